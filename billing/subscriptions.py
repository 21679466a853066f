"""Subscriptions on Stripe Billing: N hours every period for a price per period.

Stripe owns the schedule: it makes an invoice each period, charges the customer's default card
(which the portal keeps equal to the student's default card), retries a declined one on its own
schedule and, when it gives up, cancels the subscription. We keep a copy of the subscription for
the pages, and every invoice becomes a Payment (one per invoice id, unique) holding the terms of
the lot it makes: the plan's hours named after the period, expiring `rollover_periods` periods
after it. The lot is credited through billing.payments once Stripe says the invoice is paid, so a
period is credited exactly once whatever the order or repetition of its events, and receipts,
refunds and disputes treat it like any other payment.

A subscription row exists (status "starting") under our own idempotency key before Stripe is
called, under the account's lock, and at most one per account is live (a database constraint):
a double click or two tabs make one subscription.
"""

import calendar
import contextlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core import signing
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing import ledger, payments, stripe_gateway
from billing.audit import audit_reason, audit_record
from billing.cards import card_make_default, customer_ensure
from billing.errors import (
    AccountBlocked,
    BillingError,
    CardNotFound,
    PaymentDeclined,
    PaymentRefused,
    ProviderRequestInvalid,
    ProviderUnavailable,
    StripeObjectNotFound,
    SubscriptionRefused,
)
from billing.formatting import period_text, reader_locale
from billing.models import Payment, Plan, Subscription

logger = logging.getLogger(__name__)

TOKEN_SALT = "billing.subscribe-token"
TOKEN_MAX_AGE = timedelta(hours=12)
Status = Subscription.Status
# A subscription still "starting" this long after its row was made never reached Stripe, or its
# answer was lost: the reconciliation looks for it at Stripe, and after ORPHAN_AFTER gives it up.
STARTING_CHECK_AFTER = timedelta(minutes=3)
ORPHAN_AFTER = timedelta(hours=1)
# Stripe expires an incomplete subscription after 23 hours; we cancel one whose first payment
# failed at once, and one left waiting for 3-D Secure after this long.
INCOMPLETE_GIVEN_UP_AFTER = timedelta(hours=23)
# How far back the reconciliation lists a customer's invoices: a little more than a month's period.
RECONCILE_INVOICES_DAYS = 40
# English, as a subscription stores them (failure_message) and as tests and views name them; only
# marked for translation, and translated where a person reads them (`_(NOT_FOR_SALE)`).
SUBSCRIPTION_ALREADY = gettext_noop(
    "You already have a subscription. Change its plan on your subscription page instead."
)
NOT_FOR_SALE = gettext_noop("This plan is no longer on sale. Please choose another one.")
NOT_STARTED = gettext_noop(
    "We could not reach the payment provider. You were not charged and no subscription was started."
)
REFUSED = gettext_noop("The payment provider refused this subscription. You were not charged; please try again later.")
BUTTON_INVALID = gettext_noop("This subscribe button is not valid. Please reload the page and try again.")
CHANGE_REFUSED = gettext_noop("The payment provider refused this change; nothing was changed.")


class SubscriptionNotYetKnown(BillingError):
    """An invoice or event names a subscription of ours we cannot match yet: try again later."""


@dataclass(frozen=True)
class SubscribeOffer:
    account_id: int
    plan_id: int
    price_cents: int
    minutes: int
    currency: str
    interval: str
    nonce: str


@dataclass(frozen=True)
class SubscribeButton:
    """What a subscribe button offers: the plan, the card it charges and its one-time token; or why
    it cannot be used (buying paused, a subscription already live, no card: then no token)."""

    plan: Plan
    card: object
    token: str
    paused: bool = False
    current: Subscription | None = None


# Plans and their Stripe prices.


def subscription_plans_for_sale():
    return Plan.objects.filter(is_active=True, kind=Plan.Kind.SUBSCRIPTION)


def plan_price_ensure(*, plan):
    """The Stripe Price a subscription plan charges, made on first use: a Product for the plan, and a
    Price for its terms (amount, currency, period). Prices are immutable at Stripe, so new terms
    make a new Price; subscriptions already on the old one keep it until their plan is changed. A
    price Stripe no longer has (a reset stand-in) is made again."""
    if plan.stripe_price_id and plan.stripe_price_terms == plan.price_terms:
        if stripe_gateway.price_exists(plan.stripe_price_id):
            return plan.stripe_price_id
        plan.stripe_product_id = ""  # gone with its price: a reset stand-in, or deleted by hand
    looked_at = plan.stripe_price_id
    with transaction.atomic():
        # Two first uses at once (two tabs, a double click) wait here, and the second takes the Price
        # the first made: a second Price would leave a subscription on a price no plan names.
        locked = Plan.objects.select_for_update().get(pk=plan.pk)
        if locked.stripe_price_id != looked_at and locked.stripe_price_terms == plan.price_terms:
            plan.stripe_product_id, plan.stripe_price_id = locked.stripe_product_id, locked.stripe_price_id
            plan.stripe_price_terms = locked.stripe_price_terms
            return plan.stripe_price_id
        product_id = plan.stripe_product_id or stripe_gateway.product_create(name=plan.name, plan_id=plan.pk)
        price_id = stripe_gateway.price_create(
            product_id=product_id,
            plan_id=plan.pk,
            amount_cents=plan.price_cents,
            currency=plan.currency,
            interval=plan.interval,
        )
        plan.stripe_product_id, plan.stripe_price_id, plan.stripe_price_terms = product_id, price_id, plan.price_terms
        plan.save(update_fields=["stripe_product_id", "stripe_price_id", "stripe_price_terms"])
    logger.info("Plan %s now charges Stripe price %s (%s).", plan.pk, price_id, plan.price_terms)
    return price_id


def plans_price_sync():
    """`plan_price_ensure` for every subscription plan on sale. Returns (plan, price id) pairs."""
    return [(plan, plan_price_ensure(plan=plan)) for plan in subscription_plans_for_sale()]


def _plan_for_price(price_id):
    return Plan.objects.filter(stripe_price_id=price_id, kind=Plan.Kind.SUBSCRIPTION).first() if price_id else None


# Subscribing.


def live_subscription(*, account):
    return account.subscriptions.filter(status__in=Subscription.LIVE).select_related("plan", "payment_method").first()


def subscribe_button(*, account, plan, card):
    current = live_subscription(account=account)
    if account.blocked_at is not None:
        return SubscribeButton(plan=plan, card=None, token="", paused=True, current=current)
    if current is not None or card is None:
        return SubscribeButton(plan=plan, card=card, token="", current=current)
    return SubscribeButton(plan=plan, card=card, token=subscribe_token_issue(account=account, plan=plan))


def subscribe_token_issue(*, account, plan):
    """A one-time token for a subscribe button. It fixes the terms shown, so a change is noticed."""
    return signing.dumps(
        {
            "a": account.pk,
            "p": plan.pk,
            "c": plan.price_cents,
            "m": plan.minutes,
            "u": plan.currency,
            "i": plan.interval,
            "n": secrets.token_hex(16),
        },
        salt=TOKEN_SALT,
        compress=True,
    )


def _offer_read(*, account, token):
    try:
        raw = signing.loads(token or "", salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
        offer = SubscribeOffer(
            account_id=raw["a"],
            plan_id=raw["p"],
            price_cents=raw["c"],
            minutes=raw["m"],
            currency=raw["u"],
            interval=raw["i"],
            nonce=raw["n"],
        )
    except signing.SignatureExpired:
        raise SubscriptionRefused(_(payments.BUTTON_EXPIRED)) from None
    except (signing.BadSignature, KeyError, TypeError):
        raise SubscriptionRefused(_(BUTTON_INVALID)) from None
    if offer.account_id != account.pk:
        raise SubscriptionRefused(_(BUTTON_INVALID))
    return offer


def subscription_start(*, account, token):
    """Subscribe the account to the plan the token offers, charging its default card. Returns the
    Subscription: active (the first period's lot credited), incomplete (its first payment waits
    for 3-D Secure: see `subscription_open_payment`), not started (declined: its failure message
    says why, and nothing is left at Stripe) or still starting (Stripe's answer was lost: the
    reconciliation finds it). A repeated token returns the subscription it made, `replayed` set.

    Raises AccountBlocked or SubscriptionRefused (nothing made at Stripe) for a blocked account, a
    stale or foreign button, a plan not for sale or changed, no card, or a live subscription.
    """
    if account.blocked_at is not None:
        raise AccountBlocked()
    offer = _offer_read(account=account, token=token)
    existing = _subscription_for_token(account, offer)
    if existing:
        return existing
    plan = _plan_for_sale(offer)
    card = account.payment_methods.active().filter(is_default=True).first()
    if card is None:
        raise SubscriptionRefused(_("Please add a card first."))
    if live_subscription(account=account) is not None:
        raise SubscriptionRefused(_(SUBSCRIPTION_ALREADY))
    customer_id = customer_ensure(account=account)
    price_id = plan_price_ensure(plan=plan)
    with transaction.atomic():
        if ledger.account_lock(account_id=account.pk).blocked_at is not None:
            raise AccountBlocked()
        existing = _subscription_for_token(account, offer)
        if existing:
            return existing
        if live_subscription(account=account) is not None:
            raise SubscriptionRefused(_(SUBSCRIPTION_ALREADY))  # another tab won the lock
        subscription = Subscription.objects.create(
            account=account, plan=plan, payment_method=card, idempotency_key=offer.nonce
        )
    try:
        # The subscription charges the customer's default card: make sure Stripe has the one shown.
        stripe_gateway.customer_set_default_card(
            customer_id=customer_id, payment_method_id=card.stripe_payment_method_id
        )
        remote = stripe_gateway.subscription_create(
            customer_id=customer_id,
            price_id=price_id,
            metadata={"subscription_id": subscription.pk, "account_id": account.pk},
            idempotency_key=f"subscription-{offer.nonce}",
        )
    except ProviderUnavailable as unavailable:
        if unavailable.maybe_charged:
            return subscription  # it may exist at Stripe: the reconciliation finds it or gives it up
        return _not_started(subscription, code=Payment.Failure.PROVIDER_UNAVAILABLE, message=NOT_STARTED)
    except (ProviderRequestInvalid, StripeObjectNotFound, CardNotFound):
        logger.exception("Stripe refused subscription %s", subscription.pk)
        return _not_started(subscription, code=Payment.Failure.REFUSED, message=REFUSED)
    except PaymentDeclined as declined:  # error_if_incomplete behaviour; allow_incomplete answers instead
        return _not_started(subscription, code=declined.code, message=str(declined))
    subscription = subscription_sync(remote=remote) or subscription
    if remote.latest_invoice_id:
        _invoice_settle_quietly(remote.latest_invoice_id)
    return _give_up_if_declined(subscription)


def _subscription_for_token(account, offer):
    subscription = Subscription.objects.filter(idempotency_key=offer.nonce, account=account).first()
    if subscription:
        subscription.replayed = True
    return subscription


def _plan_for_sale(offer):
    plan = subscription_plans_for_sale().filter(pk=offer.plan_id).first()
    if plan is None:
        raise SubscriptionRefused(_(NOT_FOR_SALE))
    if (plan.price_cents, plan.minutes, plan.currency, plan.interval) != (
        offer.price_cents,
        offer.minutes,
        offer.currency,
        offer.interval,
    ):
        raise SubscriptionRefused(
            _("%(plan)s has changed. Please check it on the page and try again.") % {"plan": plan.name}
        )
    return plan


def _not_started(subscription, *, code, message):
    with transaction.atomic():
        ledger.account_lock(account_id=subscription.account_id)
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if subscription.status in (Status.STARTING, Status.INCOMPLETE):
            subscription.status = Status.INCOMPLETE_EXPIRED
            subscription.failure_code, subscription.failure_message = code, message[:300]
            subscription.ended_at = timezone.now()
            subscription.save()
    return subscription


def _give_up_if_declined(subscription):
    """A first invoice that was declined leaves no subscription half made: the incomplete one is
    cancelled at Stripe (so it can never charge later) and ends here as "not started"."""
    if subscription.status != Status.INCOMPLETE:
        return subscription
    first = subscription_open_payment(subscription=subscription)
    if first is None or first.status != Payment.Status.FAILED:
        return subscription
    try:
        with contextlib.suppress(StripeObjectNotFound):  # Stripe let it go already
            stripe_gateway.subscription_cancel(subscription.stripe_subscription_id)
    except BillingError:
        logger.warning("Could not cancel incomplete subscription %s; retried later.", subscription.pk, exc_info=True)
        return subscription
    return _not_started(subscription, code=first.failure_code, message=first.failure_message)


def subscription_open_payment(*, subscription):
    """The subscription's newest invoice payment that is not settled for good: what "pay now" and
    3-D Secure are about. None when every invoice is paid (or none exists yet)."""
    return (
        subscription.payments.exclude(status__in=Payment.FINAL)
        .exclude(status=Payment.Status.NEEDS_REVIEW)
        .exclude(failure_code=Payment.Failure.CANCELED)  # an invoice Stripe closed unpaid: nothing to pay
        .order_by("-created_at", "-pk")
        .first()
    )


def subscription_payment_refresh(*, payment):
    """After 3-D Secure on a subscription invoice (or while polling it): settle the payment from its
    PaymentIntent, then bring the subscription in line (a declined first payment ends it)."""
    payment = payments.payment_refresh(payment=payment)
    # A declined first payment ends it as "not started", with its reason, before Stripe's copy is
    # read: the stand-in cancels such a subscription itself, which would read as "ended".
    subscription = _give_up_if_declined(payment.subscription)
    try:
        subscription = subscription_refresh(subscription=subscription)
    except BillingError:
        logger.warning("Could not re-read subscription %s after its payment.", subscription.pk, exc_info=True)
    _give_up_if_declined(subscription)
    return Payment.objects.get(pk=payment.pk)


# Stripe's word: subscriptions and invoices, from answers, events and the reconciliation.


def subscription_refresh(*, subscription):
    """Re-read a subscription from Stripe and store what it says."""
    if not subscription.stripe_subscription_id:
        return subscription
    return subscription_sync(remote=stripe_gateway.subscription_retrieve(subscription.stripe_subscription_id))


def subscription_sync(*, remote):
    """Bring our row in line with a subscription as Stripe has it. Returns the row, or None for a
    subscription that is not ours. An ended subscription stays ended whatever comes later."""
    found = _subscription_for_remote(remote)
    if found is None:
        return None
    with transaction.atomic():
        ledger.account_lock(account_id=found.account_id)
        subscription = Subscription.objects.select_for_update().get(pk=found.pk)
        subscription.stripe_subscription_id = remote.id
        subscription.stripe_item_id = remote.item_id
        if not subscription.ended:
            if remote.status in Status.values:
                subscription.status = remote.status
            subscription.cancel_at_period_end = remote.cancel_at_period_end
            plan = _plan_for_price(remote.price_id)
            if plan is not None:
                subscription.plan = plan
            if remote.current_period_end and _moment(remote.current_period_end) >= (
                subscription.current_period_end or _moment(0)
            ):
                subscription.current_period_start = _moment(remote.current_period_start)
                subscription.current_period_end = _moment(remote.current_period_end)
            if subscription.status in Subscription.RUNNING:
                subscription.failure_code = subscription.failure_message = ""
        subscription.canceled_at = subscription.canceled_at or _moment(remote.canceled_at)
        subscription.ended_at = subscription.ended_at or _moment(remote.ended_at)
        subscription.save()
    return subscription


def _subscription_for_remote(remote):
    by_id = Subscription.objects.filter(stripe_subscription_id=remote.id).first()
    if by_id:
        return by_id
    return _subscription_for_metadata(remote.metadata)


def _subscription_for_metadata(metadata):
    try:
        subscription_id = int(metadata.get("subscription_id", ""))
        account_id = int(metadata.get("account_id", ""))
    except ValueError:
        return None
    # Both ids must match, and the row must not be linked yet: a subscription made elsewhere on the
    # same Stripe account cannot take over ours.
    return Subscription.objects.filter(
        pk=subscription_id, account_id=account_id, stripe_subscription_id__isnull=True
    ).first()


def subscription_invoice_settle(*, invoice):
    """Apply an invoice as Stripe has it: its Payment is made (once per invoice id) with the terms
    of the period's lot, then settled: paid -> the lot is credited once and a receipt issued;
    waiting for 3-D Secure or declined -> the payment says so (dunning reads it). Returns the
    Payment, or None for an invoice that is not about one of our subscriptions or charges nothing.
    Raises SubscriptionNotYetKnown for a subscription of ours not matched yet."""
    if not invoice.subscription_id or invoice.status == "draft" or invoice.amount_due_cents <= 0:
        return None
    subscription = _subscription_for_invoice(invoice)
    if subscription is None:
        return None
    payment = _invoice_payment(subscription, invoice)
    if payment is None:
        return None
    if invoice.paid:
        payment = payments.payment_paid_record(
            payment=payment,
            intent_id=invoice.payment_intent_id,
            amount_cents=invoice.amount_paid_cents,
            currency=invoice.currency,
        )
    elif invoice.status in ("void", "uncollectible"):
        payment = payments.payment_fail(
            payment=payment, code=Payment.Failure.CANCELED, message=gettext_noop("Stripe closed this invoice unpaid.")
        )
    elif invoice.payment_intent_id:
        payment = _invoice_attempt_settle(payment, invoice)
    _dunning_note(subscription, payment, invoice)
    return payment


def _invoice_attempt_settle(payment, invoice):
    """An open invoice Stripe attempted: its PaymentIntent says how (waiting for 3-D Secure, or
    declined and why). One Stripe cannot show us any more is a decline without its reason."""
    try:
        intent = stripe_gateway.payment_intent_retrieve(invoice.payment_intent_id)
    except StripeObjectNotFound:
        if not invoice.attempt_count:
            return payment
        return payments.payment_fail(
            payment=payment, code="card_declined", message=stripe_gateway.decline_message("card_declined")
        )
    return payments.payment_intent_settle(intent=intent, payment=payment)


def _subscription_for_invoice(invoice):
    subscription = Subscription.objects.filter(stripe_subscription_id=invoice.subscription_id).first()
    if subscription:
        return subscription
    # An invoice before we stored the subscription's id (its answer was lost, or this event came
    # first): Stripe's subscription names our row in its metadata, and links it.
    try:
        remote = stripe_gateway.subscription_retrieve(invoice.subscription_id)
    except StripeObjectNotFound:
        remote = None
    metadata = remote.metadata if remote is not None else invoice.subscription_metadata
    if "subscription_id" not in metadata:
        return None  # not made by the portal (the Dashboard, another integration)
    subscription = subscription_sync(remote=remote) if remote is not None else _subscription_for_metadata(metadata)
    if subscription is None:
        raise SubscriptionNotYetKnown(f"No subscription of ours for {invoice.subscription_id} yet.")
    return subscription


def _invoice_payment(subscription, invoice):
    """The Payment of an invoice, made on first sight under the account's lock (so two events about
    one invoice make one payment; the unique invoice id is the last word)."""
    with transaction.atomic():
        ledger.account_lock(account_id=subscription.account_id)
        payment = Payment.objects.select_for_update().filter(stripe_invoice_id=invoice.id).first()
        if payment is not None:
            _payment_intent_follow(payment, invoice)
            return payment
        # The lot's name (its period) reads in the student's language, whoever brings the invoice.
        with reader_locale(subscription.account.user):
            terms = _invoice_terms(subscription, invoice)
        if terms is None:
            logger.warning("Invoice %s of subscription %s adds no hours.", invoice.id, subscription.pk)
            return None
        intent_id = invoice.payment_intent_id
        if intent_id and Payment.objects.filter(stripe_payment_intent_id=intent_id).exists():
            intent_id = None
        return Payment.objects.create(
            account_id=subscription.account_id,
            subscription=subscription,
            stripe_invoice_id=invoice.id,
            stripe_payment_intent_id=intent_id,
            idempotency_key=f"invoice-{invoice.id}"[:64],
            amount_cents=invoice.amount_due_cents,
            currency=invoice.currency,
            validity_days=terms.plan.validity_days,
            payment_method=_card_of(subscription),
            **terms.fields(),
        )


def _payment_intent_follow(payment, invoice):
    """Stripe may pay an invoice with a new PaymentIntent on a retry (API versions from 2025-03-31):
    an unsettled payment follows it, so the refresh and the 3-D Secure hand-off use the live one."""
    intent_id = invoice.payment_intent_id
    if not intent_id or intent_id == payment.stripe_payment_intent_id or payment.final:
        return
    if Payment.objects.filter(stripe_payment_intent_id=intent_id).exclude(pk=payment.pk).exists():
        return
    payment.stripe_payment_intent_id = intent_id
    payment.save(update_fields=["stripe_payment_intent_id", "updated_at"])


def _card_of(subscription):
    """The card the subscription charges: the account's default card (see stripe_gateway's
    subscription_create), or the one it started with when there is none any more."""
    account = subscription.account
    return account.payment_methods.active().filter(is_default=True).first() or subscription.payment_method


@dataclass(frozen=True)
class LotTerms:
    kind: str
    plan: Plan
    minutes: int
    period_start: datetime
    period_end: datetime
    lot_name: str
    lot_expires_at: datetime

    def fields(self):
        return {
            "kind": self.kind,
            "plan": self.plan,
            "minutes": self.minutes,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "lot_name": self.lot_name[:80],
            "lot_expires_at": self.lot_expires_at,
        }


def _invoice_terms(subscription, invoice):
    """What an invoice pays for: a period's hours, or an upgrade's pro-rata extra hours for the rest
    of the current period. None when it adds no hours (a downgrade's credit, say)."""
    lines = [line for line in invoice.lines if line.amount_cents > 0]
    if not lines:
        return None
    if invoice.proration:
        return _upgrade_terms(subscription, invoice)
    line = next((line for line in lines if not line.proration), lines[0])
    plan = _plan_for_price(line.price_id) or subscription.plan
    start, end = _moment(line.period_start), _moment(line.period_end)
    return LotTerms(
        kind=Payment.Kind.SUBSCRIPTION,
        plan=plan,
        minutes=plan.minutes,
        period_start=start,
        period_end=end,
        lot_name=f"{plan.name}, {period_text(start, plan.interval)}",
        lot_expires_at=period_after(end, plan.interval, plan.rollover_periods),
    )


def _upgrade_terms(subscription, invoice):
    """Stripe's proration invoice lists the unused time on the old price (negative) and the remaining
    time on the new one (positive) over the rest of the period: the extra hours are the plans'
    difference in hours for that share of the period."""
    added = [line for line in invoice.lines if line.proration and line.amount_cents > 0]
    taken = [line for line in invoice.lines if line.proration and line.amount_cents < 0]
    if not added:
        return None
    new_plan = _plan_for_price(added[0].price_id) or subscription.plan
    old_plan = _plan_for_price(taken[0].price_id) if taken else None
    if taken and old_plan is None:
        # A price its plan no longer charges (the plan's price changed since): the plan the current
        # period was paid for, or the upgrade would credit the new plan's hours in full.
        paid = subscription.payments.filter(kind=Payment.Kind.SUBSCRIPTION, status=Payment.Status.SUCCEEDED)
        period_paid = paid.order_by("-period_start", "-pk").first()
        old_plan = period_paid.plan if period_paid else None
    start, end = added[0].period_start, added[0].period_end
    period_start = subscription.current_period_start or _moment(start)
    period_end = subscription.current_period_end or _moment(end)
    minutes = prorated_minutes(
        new_plan.minutes - (old_plan.minutes if old_plan else 0),
        remaining_seconds=end - start,
        period_seconds=int((period_end - period_start).total_seconds()) or (end - start),
    )
    if minutes <= 0:
        return None
    return LotTerms(
        kind=Payment.Kind.PLAN_CHANGE,
        plan=new_plan,
        minutes=minutes,
        period_start=_moment(start),
        period_end=_moment(end),
        lot_name=_("%(plan)s, %(period)s (upgrade)")
        % {"plan": new_plan.name, "period": period_text(period_start, new_plan.interval)},
        lot_expires_at=period_after(_moment(end), new_plan.interval, new_plan.rollover_periods),
    )


def prorated_minutes(extra_minutes, *, remaining_seconds, period_seconds):
    """The share of `extra_minutes` for the rest of a period, in whole minutes (half up)."""
    if period_seconds <= 0:
        return 0
    remaining_seconds = min(max(remaining_seconds, 0), period_seconds)
    return (extra_minutes * remaining_seconds + period_seconds // 2) // period_seconds


def period_after(moment, interval, periods):
    """`moment` plus `periods` periods: calendar months (the day kept where the month has it, as
    Stripe's monthly billing does) or weeks."""
    if interval == Plan.Interval.WEEK:
        return moment + timedelta(weeks=periods)
    month_index = moment.month - 1 + periods
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _dunning_note(subscription, payment, invoice):
    """A renewal that failed: the subscription is past due (as Stripe marks it) with the reason for
    the student; a paid one clears that. A newer invoice's period moves the subscription's period on
    (the stand-in's subscriptions never renew themselves)."""
    with transaction.atomic():
        ledger.account_lock(account_id=subscription.account_id)
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if subscription.ended:
            return
        if (
            payment.status == Payment.Status.FAILED
            and invoice.attempt_count
            and invoice.status not in ("void", "uncollectible")  # closed: Stripe's subscription status stands
            and subscription.status in (Subscription.RUNNING | Subscription.OVERDUE)
        ):
            subscription.status = Status.PAST_DUE
            subscription.failure_code, subscription.failure_message = payment.failure_code, payment.failure_message
        elif payment.status == Payment.Status.SUCCEEDED and payment.kind == Payment.Kind.SUBSCRIPTION:
            if subscription.status in Subscription.OVERDUE | {Status.INCOMPLETE}:
                subscription.status = Status.ACTIVE
            subscription.failure_code = subscription.failure_message = ""
            if payment.period_end and payment.period_end > (subscription.current_period_end or _moment(0)):
                subscription.current_period_start, subscription.current_period_end = (
                    payment.period_start,
                    payment.period_end,
                )
        subscription.save()


def _invoice_settle_quietly(invoice_id):
    """Settle an invoice we just caused (a subscription's first, an upgrade's): its events settle it
    too, so a failure here is logged, not shown."""
    try:
        return subscription_invoice_settle(invoice=stripe_gateway.invoice_retrieve(invoice_id))
    except Exception:
        logger.exception("Could not settle invoice %s now; its events and the reconciliation will.", invoice_id)
        return None


# Self-service and staff actions.


def subscription_cancel_at_period_end(*, subscription, actor=None, reason="", ip_address=None):
    """Stop the renewal at the end of the current period. Hours already granted stay until they
    expire. With `actor` (staff), audited with a reason."""
    return _remote_change(
        subscription,
        allowed=not subscription.cancel_at_period_end,
        refused=_("This subscription already ends at the end of its period."),
        change=lambda remote_id: stripe_gateway.subscription_cancel_at_period_end(remote_id, cancel=True),
        audit=("subscription.cancel_at_period_end", actor, reason, ip_address),
    )


def subscription_resume(*, subscription, actor=None, reason="", ip_address=None):
    """Undo a cancel at period end, before the period ends."""
    still_running = subscription.current_period_end is None or subscription.current_period_end > timezone.now()
    return _remote_change(
        subscription,
        allowed=subscription.cancel_at_period_end and still_running,
        refused=_("This subscription is not set to end, so there is nothing to resume."),
        change=lambda remote_id: stripe_gateway.subscription_cancel_at_period_end(remote_id, cancel=False),
        audit=("subscription.resume", actor, reason, ip_address),
    )


def subscription_cancel_now(*, subscription, actor, reason, ip_address=None):
    """Staff: end it now. No more invoices; hours already granted stay until they expire (a refund
    takes them back, as for any payment)."""
    return _remote_change(
        subscription,
        allowed=True,
        refused="",
        change=stripe_gateway.subscription_cancel,
        audit=("subscription.cancel_now", actor, reason, ip_address),
    )


def _remote_change(subscription, *, allowed, refused, change, audit):
    action, actor, reason, ip_address = audit
    if actor is not None:
        reason = audit_reason(reason)
    if subscription.ended or not subscription.stripe_subscription_id:
        raise SubscriptionRefused(_("This subscription has ended or has not started; nothing was changed."))
    if not allowed:
        raise SubscriptionRefused(refused)
    before = {"status": subscription.status, "cancel_at_period_end": subscription.cancel_at_period_end}
    try:
        remote = change(subscription.stripe_subscription_id)
    except StripeObjectNotFound:
        raise SubscriptionRefused(_("The payment provider no longer knows this subscription.")) from None
    except ProviderRequestInvalid:
        raise SubscriptionRefused(_(CHANGE_REFUSED)) from None
    with transaction.atomic():
        subscription = subscription_sync(remote=remote)
        if actor is not None:
            audit_record(
                actor=actor,
                action=action,
                target=subscription,
                reason=reason,
                before=before,
                after={"status": subscription.status, "cancel_at_period_end": subscription.cancel_at_period_end},
                ip_address=ip_address,
            )
    return subscription


def plan_change_options(*, subscription):
    """The plans a subscription can move to: on sale, same period and currency, not its own."""
    plan = subscription.plan
    return subscription_plans_for_sale().filter(interval=plan.interval, currency=plan.currency).exclude(pk=plan.pk)


def subscription_plan_change(*, subscription, plan_id):
    """Move to another plan. An upgrade (a higher price) applies now: Stripe invoices the prorated
    difference at once, and that invoice's payment (returned, like a first payment: paid, waiting
    for 3-D Secure or declined) credits the extra hours for the rest of the period. Until it is
    paid the subscription keeps its plan. A downgrade applies from the next period: nothing is
    charged or credited now. Returns (subscription, payment or None)."""
    if subscription.ended or subscription.status not in Subscription.RUNNING:
        raise SubscriptionRefused(_("Only an active subscription can change plan."))
    target = plan_change_options(subscription=subscription).filter(pk=plan_id).first()
    if target is None:
        raise SubscriptionRefused(
            _(NOT_FOR_SALE) if plan_id != subscription.plan_id else _("You are already on this plan.")
        )
    upgrade = target.price_cents > subscription.plan.price_cents
    price_id = plan_price_ensure(plan=target)
    with transaction.atomic():
        # Under the account's lock for the length of Stripe's answer: a double click waits, then finds
        # the plan changed and changes nothing (plan changes are rare; nothing else waits long on it).
        ledger.account_lock(account_id=subscription.account_id)
        current = Subscription.objects.select_related("plan").get(pk=subscription.pk)
        if current.plan_id == target.pk:
            return current, None
        try:
            remote = stripe_gateway.subscription_price_change(
                subscription_id=current.stripe_subscription_id,
                item_id=current.stripe_item_id,
                price_id=price_id,
                prorate=upgrade,
                idempotency_key=f"plan-change-{current.pk}-{target.pk}-{int(current.updated_at.timestamp())}",
            )
        except PaymentDeclined as declined:
            raise SubscriptionRefused(
                # The decline's words are stored English (stripe_gateway.DECLINE_MESSAGES): translated here.
                _("%(reason)s Your plan stays %(plan)s.") % {"reason": _(str(declined)), "plan": current.plan.name}
            ) from None
        except (ProviderRequestInvalid, StripeObjectNotFound):
            raise SubscriptionRefused(_(CHANGE_REFUSED)) from None
        # Still under the lock: a click waiting for it must find the new plan, not change it again.
        subscription = subscription_sync(remote=remote)
    payment = _invoice_settle_quietly(remote.latest_invoice_id) if upgrade and remote.latest_invoice_id else None
    if payment is not None and payment.kind != Payment.Kind.PLAN_CHANGE:
        payment = None  # Stripe's latest invoice is still the period's: nothing was invoiced for the change
    return subscription, payment


def subscription_card_change(*, subscription, card):
    """Charge `card` from now on. The subscription charges the account's default card (Stripe's
    customer default), so the card becomes the default for one-click packages too; the page says so."""
    if subscription.ended:
        raise SubscriptionRefused(_("This subscription has ended; nothing was changed."))
    if card.account_id != subscription.account_id or card.removed_at is not None:
        raise SubscriptionRefused(_("That card is not one of your saved cards."))
    card_make_default(card=card)  # the live subscription's card follows the default
    subscription.payment_method = card
    return subscription


def subscription_pay_now(*, subscription):
    """Pay the subscription's unpaid invoice with its card (after a failed renewal). Returns the
    invoice's Payment: paid, waiting for 3-D Secure (the page hands it to Stripe.js) or declined."""
    if subscription.account.blocked_at is not None:
        raise AccountBlocked()
    payment = subscription_open_payment(subscription=subscription)
    if payment is None:
        raise SubscriptionRefused(_("There is nothing to pay on this subscription."))
    if payment.status == Payment.Status.REQUIRES_ACTION:
        return payment  # the bank's check is what is missing, not another attempt
    try:
        stripe_gateway.invoice_pay(payment.stripe_invoice_id)
    except PaymentDeclined:
        pass  # the invoice and its PaymentIntent say why, read below
    except StripeObjectNotFound:
        raise SubscriptionRefused(_("The payment provider no longer knows this invoice.")) from None
    except ProviderRequestInvalid:
        pass  # paid meanwhile, or closed: the invoice says which
    except ProviderUnavailable:
        raise PaymentRefused(_(payments.NOT_CHARGED)) from None
    settled = subscription_invoice_settle(invoice=stripe_gateway.invoice_retrieve(payment.stripe_invoice_id))
    if settled is not None:
        try:
            subscription_refresh(subscription=subscription)
        except BillingError:
            logger.warning("Could not re-read subscription %s after paying.", subscription.pk, exc_info=True)
    return settled or payment


# Reconciliation.


def subscriptions_reconcile():
    """Find what events were missed: subscriptions whose start lost its answer, incomplete ones to
    give up, and every recent invoice of our subscribers, settled (idempotently) as Stripe has it, so
    that each paid invoice has its credited lot. Returns how many subscriptions were looked at."""
    now = timezone.now()
    looked_at = 0
    for subscription in Subscription.objects.filter(status=Status.STARTING, created_at__lte=now - STARTING_CHECK_AFTER):
        looked_at += _quietly(_starting_reconcile, subscription, now)
    incomplete = Subscription.objects.filter(status=Status.INCOMPLETE)
    for subscription in incomplete:
        looked_at += _quietly(_incomplete_reconcile, subscription, now)
    recent = Subscription.objects.filter(stripe_subscription_id__isnull=False).exclude(
        status__in=Subscription.ENDED, updated_at__lt=now - timedelta(days=RECONCILE_INVOICES_DAYS)
    )
    recent = recent.exclude(account__stripe_customer_id="")  # a customer Stripe deleted: nothing to list
    for customer_id in recent.values_list("account__stripe_customer_id", flat=True).distinct():
        looked_at += _quietly(_invoices_reconcile, customer_id, now)
    return looked_at


def _quietly(function, *args):
    """One subscription or customer that cannot be reconciled must not stop the others."""
    try:
        function(*args)
    except Exception:
        logger.exception("Could not reconcile %s; the next run tries again.", args[0])
    return 1


def _starting_reconcile(subscription, now):
    customer_id = subscription.account.stripe_customer_id
    made = customer_id and next(
        (
            remote
            for remote in stripe_gateway.subscriptions_for(customer_id)
            if remote.metadata.get("subscription_id") == str(subscription.pk)
        ),
        None,
    )
    if made:
        subscription = subscription_sync(remote=made)
        if made.latest_invoice_id:
            _invoice_settle_quietly(made.latest_invoice_id)
        _give_up_if_declined(Subscription.objects.get(pk=subscription.pk))
    elif now - subscription.created_at > ORPHAN_AFTER:
        _not_started(subscription, code=Payment.Failure.NOT_CHARGED, message=NOT_STARTED)


def _incomplete_reconcile(subscription, now):
    # The first invoice before the subscription: a declined one ends it as "not started" with its
    # reason, where the stand-in's own cancel of it would read as "ended".
    first = subscription_open_payment(subscription=subscription)
    if first is not None and first.stripe_invoice_id:
        subscription_invoice_settle(invoice=stripe_gateway.invoice_retrieve(first.stripe_invoice_id))
    subscription = _give_up_if_declined(Subscription.objects.get(pk=subscription.pk))
    subscription = subscription_refresh(subscription=subscription)
    if subscription.status == Status.INCOMPLETE and now - subscription.created_at > INCOMPLETE_GIVEN_UP_AFTER:
        with contextlib.suppress(StripeObjectNotFound):  # Stripe let it go already
            stripe_gateway.subscription_cancel(subscription.stripe_subscription_id)
        _not_started(subscription, code=Payment.Failure.CANCELED, message=payments.CANCELLED)


def _invoices_reconcile(customer_id, now):
    since = int((now - timedelta(days=RECONCILE_INVOICES_DAYS)).timestamp())
    for invoice in stripe_gateway.invoices_for(customer_id=customer_id, created_after=since):
        try:
            subscription_invoice_settle(invoice=invoice)
        except SubscriptionNotYetKnown:
            continue
    for remote in stripe_gateway.subscriptions_for(customer_id):
        subscription_sync(remote=remote)


def _moment(timestamp):
    return datetime.fromtimestamp(timestamp, tz=UTC) if timestamp is not None else None
