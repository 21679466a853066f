"""Read-only queries the pages need, shaped for them."""

from dataclasses import dataclass
from datetime import datetime

from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import (
    Account,
    Dispute,
    LedgerEntry,
    Lot,
    Payment,
    PaymentMethod,
    Plan,
    Receipt,
    Refund,
    Subscription,
    Usage,
)


@dataclass(frozen=True)
class NextExpiry:
    minutes: int
    expires_at: datetime


@dataclass(frozen=True)
class BalanceSummary:
    """What the dashboard shows about an account, computed from one query over its lots."""

    available_minutes: int
    low_balance_threshold_minutes: int
    next_expiry: NextExpiry | None
    active_lots: list
    expired_lots: list
    all_lots: list

    @property
    def is_new(self):
        return not self.all_lots

    @property
    def is_low(self):
        return not self.is_new and self.available_minutes < self.low_balance_threshold_minutes


def balance_summary(*, account, now=None):
    """Available hours (usable lots only), the next expiry and the lots split for display.

    The available figure counts only lots usable now, so a lot whose expiry has passed stops
    counting at once, even before the expiry job books it.
    """
    now = now or timezone.now()
    expired_minutes = (
        LedgerEntry.objects.filter(lot=OuterRef("pk"), kind=LedgerEntry.Kind.EXPIRY)
        .values("lot")
        .annotate(total=Sum("minutes"))
        .values("total")
    )
    lots = list(
        Lot.objects.filter(account=account)
        .select_related("plan", "payment__receipt")
        .annotate(minutes_expired=-Coalesce(Subquery(expired_minutes), 0))
        .order_by("expires_at", "id")
    )
    active = [lot for lot in lots if not lot.is_expired(now)]
    expired = sorted((lot for lot in lots if lot.is_expired(now)), key=lambda lot: lot.expires_at, reverse=True)
    usable = [lot for lot in active if lot.is_usable(now)]
    next_expiry = None
    if usable:
        soonest = usable[0].expires_at
        next_expiry = NextExpiry(
            minutes=sum(lot.minutes_remaining for lot in usable if lot.expires_at == soonest),
            expires_at=soonest,
        )
    return BalanceSummary(
        available_minutes=sum(lot.minutes_remaining for lot in usable),
        low_balance_threshold_minutes=account.low_balance_threshold_minutes,
        next_expiry=next_expiry,
        active_lots=active,
        expired_lots=expired,
        all_lots=lots,
    )


def usage_history(*, account):
    return Usage.objects.filter(account=account)


def with_available_minutes(queryset, *, now, account="pk"):
    """`queryset` annotated with `available`: the minutes in its account's lots usable at `now` (the
    dashboard's balance), in one subquery. `account` names the row's account id (an Account: its pk)."""
    usable = (
        Lot.objects.usable(now)
        .filter(account_id=OuterRef(account))
        .values("account")
        .annotate(total=Sum("minutes_remaining"))
        .values("total")
    )
    return queryset.annotate(available=Coalesce(Subquery(usable), 0))


def plans_for_sale():
    """Packages on sale (subscription plans: billing.subscriptions.subscription_plans_for_sale)."""
    return Plan.objects.filter(is_active=True, kind=Plan.Kind.PACKAGE)


# What a user may see, as querysets: a view looks an id up in one of them, so another student's
# id is simply not found (404).


def lots_of(*, user):
    return Lot.objects.select_related("plan").filter(account__user=user)


def lot_history(*, lot):
    return LedgerEntry.objects.filter(lot=lot).select_related("usage").order_by("occurred_at", "id")


def accounts_out_of_balance():
    """Accounts whose cached balance differs from their ledger or from their lots' remainders."""
    entries_sum = (
        LedgerEntry.objects.filter(account=OuterRef("pk"))
        .values("account")
        .annotate(total=Sum("minutes"))
        .values("total")
    )
    lots_sum = (
        Lot.objects.filter(account=OuterRef("pk"))
        .values("account")
        .annotate(total=Sum("minutes_remaining"))
        .values("total")
    )
    return (
        Account.objects.annotate(
            ledger_minutes=Coalesce(Subquery(entries_sum), 0),
            lots_minutes=Coalesce(Subquery(lots_sum), 0),
        )
        .filter(~Q(balance_minutes=F("ledger_minutes")) | ~Q(balance_minutes=F("lots_minutes")))
        .select_related("user")
    )


def cards_for_account(*, account):
    """The account's saved cards, default first."""
    return list(account.payment_methods.active())


def payments_of(*, user):
    return Payment.objects.select_related("plan", "payment_method", "lot", "renewed_lot").filter(account__user=user)


def cards_of(*, user):
    return PaymentMethod.objects.active().filter(account__user=user)


def subscriptions_of(*, user):
    """Subscriptions a student may see and act on: their own."""
    return Subscription.objects.select_related("plan", "payment_method").filter(account__user=user)


def subscription_invoices(*, subscription):
    """A subscription's invoices (its payments), newest first, with their lots and receipts."""
    invoices = subscription.payments.select_related("plan", "lot", "receipt", "payment_method")
    return invoices.order_by("-created_at", "-pk")


def receipts_for_account(*, account):
    return Receipt.objects.filter(account=account)


def receipts_of(*, user):
    """Receipts a student may download: their own. (Staff download from the console.)"""
    return Receipt.objects.filter(account__user=user)


class PurchaseState(models.TextChoices):
    """What became of one row of a student's purchase history, the most telling first: a row that
    is both partly refunded and disputed says "on hold" (its other facts are on the row too)."""

    PAID = "paid", _("Paid")
    GRANTED = "granted", _("Granted by your school")
    RESTORED = "restored", _("Restored")
    REFUNDED = "refunded", _("Refunded")
    PARTLY_REFUNDED = "partly_refunded", _("Partly refunded")
    ON_HOLD = "on_hold", _("Hours on hold")
    DISPUTED = "disputed", _("Disputed")
    DISPUTE_LOST = "dispute_lost", _("Dispute lost")
    RELEASED = "released", _("Hours released")
    FAILED = "failed", _("Failed")
    CHECKING = "checking", _("Being checked")
    UNDER_REVIEW = "under_review", _("Under review")
    RESOLVED = "resolved", _("Resolved by staff")


@dataclass(frozen=True)
class PurchaseRow:
    """One row of a student's purchase history: a payment (with what followed it), or a lot that no
    payment made (granted by staff, restored from a voided session)."""

    bought_at: datetime
    name: str
    kind: str  # how it came: Purchase, Renewal, Top-up, Subscription period, Granted by your school...
    minutes: int
    amount_cents: int  # what was paid (or asked, for an attempt that charged nothing); 0 for a free lot
    currency: str
    state: PurchaseState
    charged: bool = False
    lot: Lot | None = None
    receipt: Receipt | None = None
    refunded_cents: int = 0
    minutes_taken_back: int = 0
    minutes_held: int = 0  # by disputes still open
    minutes_lost: int = 0  # held by disputes the student's bank decided against us: gone for good
    minutes_released: int = 0
    disputed: bool = False  # a dispute is open, whether or not it holds hours yet
    failure_message: str = ""


def purchase_history(*, account, declined=True):
    """The account's payments, newest first, each with its refunds and disputes summed up, and the
    lots no payment made. `declined=False` leaves out the attempts that failed. Payments cancelled
    before the bank confirmed them (a new click, an abandoned check) charged nothing and were never
    the student's decision to make: they are left out.

    Two queries whatever the history's length: the sums are subqueries of the payments' one."""
    payments = (
        Payment.objects.filter(account=account)
        .exclude(status=Payment.Status.FAILED, failure_code=Payment.Failure.CANCELED)
        .select_related("plan", "lot", "receipt")
        .annotate(
            refunded_cents=_sum_of(Refund.objects.filter(status__in=Refund.APPLIED), "amount_cents"),
            minutes_taken_back=_sum_of(Refund.objects.filter(status__in=Refund.APPLIED), "minutes_reversed"),
            minutes_held=_sum_of(Dispute.objects.filter(closed=False), "minutes_held"),
            minutes_lost=_sum_of(Dispute.objects.filter(status=Dispute.Status.LOST), "minutes_held"),
            minutes_released=Coalesce(
                Subquery(
                    LedgerEntry.objects.filter(lot=OuterRef("lot_id"), kind=LedgerEntry.Kind.DISPUTE_RELEASE)
                    .values("lot")
                    .annotate(total=Sum("minutes"))
                    .values("total")
                ),
                0,
            ),
            disputed=Exists(Dispute.objects.filter(payment=OuterRef("pk"), closed=False)),
        )
    )
    if not declined:
        payments = payments.exclude(status=Payment.Status.FAILED)
    rows = [_payment_row(payment) for payment in payments]
    free_lots = Lot.objects.filter(account=account, payment__isnull=True)
    rows += [_lot_row(lot) for lot in free_lots]
    return sorted(rows, key=lambda row: row.bought_at, reverse=True)


def _sum_of(queryset, field):
    """The sum of `field` over the rows of `queryset` that belong to the outer payment (0 if none)."""
    total = queryset.filter(payment=OuterRef("pk")).values("payment").annotate(total=Sum(field)).values("total")
    return Coalesce(Subquery(total), 0)


def _payment_row(payment):
    lot = payment.lot
    return PurchaseRow(
        bought_at=lot.purchased_at if lot else payment.created_at,
        name=lot.name if lot else (payment.lot_name or payment.plan.name),
        kind=payment.get_kind_display(),
        minutes=lot.minutes_purchased if lot else payment.minutes,
        amount_cents=payment.charged_cents,
        currency=payment.charged_currency,
        state=_payment_state(payment),
        charged=payment.charged,
        lot=lot,
        receipt=getattr(payment, "receipt", None),
        refunded_cents=payment.refunded_cents,
        minutes_taken_back=payment.minutes_taken_back,
        minutes_held=payment.minutes_held,
        minutes_lost=payment.minutes_lost,
        minutes_released=payment.minutes_released,
        disputed=payment.disputed,
        failure_message=payment.failure_message if payment.status == Payment.Status.FAILED else "",
    )


def _payment_state(payment):
    Status = Payment.Status
    if payment.status == Status.FAILED:
        return PurchaseState.FAILED
    if payment.status in Payment.IN_FLIGHT:
        return PurchaseState.CHECKING
    if payment.status == Status.NEEDS_REVIEW:
        return PurchaseState.UNDER_REVIEW
    if payment.status == Status.RESOLVED:
        return PurchaseState.RESOLVED
    if payment.minutes_lost:
        return PurchaseState.DISPUTE_LOST
    if payment.minutes_held:
        return PurchaseState.ON_HOLD
    if payment.refunded_cents:
        full = payment.refunded_cents >= payment.charged_cents
        return PurchaseState.REFUNDED if full else PurchaseState.PARTLY_REFUNDED
    if payment.disputed:
        return PurchaseState.DISPUTED
    if payment.minutes_released:
        return PurchaseState.RELEASED
    return PurchaseState.PAID


def _lot_row(lot):
    state = {Lot.Source.GRANT: PurchaseState.GRANTED, Lot.Source.RESTORED: PurchaseState.RESTORED}.get(
        lot.source, PurchaseState.PAID
    )
    return PurchaseRow(
        bought_at=lot.purchased_at,
        name=lot.name,
        kind=lot.get_source_display(),
        minutes=lot.minutes_purchased,
        amount_cents=lot.price_cents,
        currency=lot.currency,
        state=state,
        charged=lot.source == Lot.Source.PURCHASE,  # sold, credited without a payment row of ours
        lot=lot,
    )
