"""Read-only queries the pages need, shaped for them."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import Account, LedgerEntry, Lot, Payment, PaymentMethod, Plan, Receipt, Subscription, Usage


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
