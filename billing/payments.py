"""Buying hours with a saved card: first purchase, renewal and top-up share one path.

A pay button carries a signed one-time token naming the account, plan, price and a nonce. The
nonce is the Payment's idempotency key: the row is created (or found, for a repeated click) under
the account's row lock BEFORE Stripe is called, and at most one payment per account is in flight,
so double clicks and concurrent requests charge once. Stripe's answer, a later refresh or the
payment_intent.* webhook settle the Payment through `payment_intent_settle`, which credits the lot
exactly once whichever comes first and never moves a payment backwards.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing import ledger, stripe_gateway
from billing.audit import audit_reason, audit_record
from billing.cards import card_forget, customer_ensure
from billing.errors import (
    AccountBlocked,
    BillingError,
    CardNotFound,
    PaymentDeclined,
    PaymentInProgress,
    PaymentRefused,
    ProviderAnswerUnreadable,
    ProviderRequestInvalid,
    ProviderSearchIncomplete,
    ProviderUnavailable,
)
from billing.formatting import money_text
from billing.fraud.rules import fraud_rules_check
from billing.models import Account, Lot, Payment, PaymentMethod, Plan
from billing.receipts import receipt_issue
from billing.stripe_gateway import StripeStatus

logger = logging.getLogger(__name__)

TOKEN_SALT = "billing.payment-token"
TOKEN_MAX_AGE = timedelta(hours=12)
# A payment still "processing" without a PaymentIntent id this long after it started never reached
# Stripe's charge (or the request died with it); see payment_refresh.
ORPHAN_AFTER = timedelta(minutes=2)
# A payment still processing this long after it started has lost its answer somewhere.
STUCK_AFTER = timedelta(minutes=3)
# 3-D Secure left unfinished this long is settled from what Stripe says (usually: not paid); a
# payment whose PaymentIntent the bounded search has not found this long is left for staff.
ABANDONED_AFTER = timedelta(hours=24)
# A 3-D Secure payment that Stripe has not let us cancel this long after its cancel became due (the
# account's block, or the check abandoned) is left for staff, instead of being retried (and logged)
# every five minutes for ever.
CANCEL_GIVEN_UP_AFTER = timedelta(hours=24)
# The reconciliation lists Stripe's PaymentIntents (100 a page) instead of retrieving each payment's
# only while a page answers for this many of them on average; past that (the account's other intents,
# or a window stretched by one old payment) the rest are retrieved one by one.
LISTED_PER_PAGE_AT_LEAST = 10
Failure = Payment.Failure
# The texts below are English, as a payment stores them (failure_message) and as tests and views name
# them; they are only marked for translation, and translated where a person reads them (`_(NOT_CHARGED)`).
NOT_CHARGED = gettext_noop("We could not reach the payment provider. You were not charged; please try again.")
REFUSED = gettext_noop("The payment provider refused this payment. You were not charged; please try another card.")
CANCELLED = gettext_noop("This payment was cancelled before your bank confirmed it. You were not charged.")
# What the student reads about a payment left for staff: never Stripe's ids or amounts. It gets its
# hours once Stripe confirms the charge, or its money back from staff; nothing holds the next
# purchase back meanwhile.
PAYMENT_UNDER_REVIEW = gettext_noop(
    "We could not confirm this payment automatically, so no hours were added for it yet. Our staff will check it: "
    "if you were charged, you get its hours or your money back. You may buy again meanwhile if you need hours now."
)

# What the student reads about a payment staff resolved (refunded, corrected by hand...): what was
# done is between staff and the student, so no amounts or ids here either.
PAYMENT_RESOLVED = gettext_noop(
    "Our staff have checked this payment and settled it; nothing more happens to it here. If you have a question "
    "about it, write to your tutoring coordinator."
)
BUTTON_EXPIRED = gettext_noop("This button has expired. Please reload the page and try again.")
BUTTON_INVALID = gettext_noop("This payment button is not valid. Please reload the page and try again.")


class UnknownPaymentIntent(BillingError):
    """A PaymentIntent that no Payment of ours knows."""


@dataclass(frozen=True)
class PaymentOffer:
    """What a pay button promised: decoded from its signed token."""

    account_id: int
    plan_id: int
    price_cents: int
    minutes: int
    currency: str
    validity_days: int
    kind: str
    renewed_lot_id: int | None
    nonce: str


@dataclass(frozen=True)
class PaymentButton:
    """What one pay button offers: the plan, the card it charges and its one-time token; or, for a
    blocked account, that buying is paused (and no token at all)."""

    plan: Plan
    kind: str
    card: PaymentMethod | None
    token: str
    paused: bool = False


def payment_button(*, account, plan, kind, renewed_lot=None, card=None):
    """The button for buying `plan` as `kind` (renewing `renewed_lot`) with `card`. Without a card
    it only invites the student to add one, and carries no token."""
    if account.blocked_at is not None:
        return PaymentButton(plan=plan, kind=kind, card=None, token="", paused=True)
    token = payment_token_issue(account=account, plan=plan, kind=kind, renewed_lot=renewed_lot) if card else ""
    return PaymentButton(plan=plan, kind=kind, card=card, token=token)


def payment_token_issue(*, account, plan, kind, renewed_lot=None):
    """A one-time token for a pay button. It fixes the price shown, so a price change is noticed."""
    return signing.dumps(
        {
            "a": account.pk,
            "p": plan.pk,
            "c": plan.price_cents,
            "m": plan.minutes,
            "u": plan.currency,
            "v": plan.validity_days,
            "k": kind,
            "l": renewed_lot.pk if renewed_lot else None,
            "n": secrets.token_hex(16),
        },
        salt=TOKEN_SALT,
        compress=True,
    )


def payment_offer_read(*, account, token):
    try:
        raw = signing.loads(token or "", salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise PaymentRefused(_(BUTTON_EXPIRED)) from None
    except signing.BadSignature:
        raise PaymentRefused(_(BUTTON_INVALID)) from None
    offer = PaymentOffer(
        account_id=raw["a"],
        plan_id=raw["p"],
        price_cents=raw["c"],
        minutes=raw["m"],
        currency=raw["u"],
        validity_days=raw["v"],
        kind=raw["k"],
        renewed_lot_id=raw["l"],
        nonce=raw["n"],
    )
    if offer.account_id != account.pk or offer.kind not in Payment.Kind.values:
        raise PaymentRefused(_(BUTTON_INVALID))
    return offer


def payment_start(*, account, token, payment_method_id=None):
    """Charge the saved card for what the token offers. Returns the Payment in whatever state Stripe
    left it: succeeded (hours credited), requires_action (3-D Secure), failed, or processing.

    A repeated token returns the Payment it already made, with `replayed` set to True. While another
    payment of the account still waits for 3-D Secure (its cancel failed, or a click raced this one),
    that payment is returned instead of a new one, with `handed_back` set to True: it may be for
    another plan than the button's, so the page must name it.

    Raises PaymentRefused (nothing charged) for a blocked account, a stale or foreign button, a plan
    no longer on sale or changed since the button was shown, a missing card or another payment still
    processing. After each new attempt the fraud rules look at the account (see billing.fraud).
    """
    if account.blocked_at is not None:
        raise AccountBlocked()
    offer = payment_offer_read(account=account, token=token)
    existing = _payment_for_token(account, offer)
    if existing:
        return existing
    plan = _plan_for_sale(offer)
    renewed_lot = _renewed_lot(account, offer)
    card = _card_to_charge(account, payment_method_id)
    _settle_payments_in_flight(account)
    with transaction.atomic():
        if ledger.account_lock(account_id=account.pk).blocked_at is not None:
            raise AccountBlocked()  # blocked by staff since this request began
        existing = _payment_for_token(account, offer)
        if existing:
            return existing
        # Still unfinished after _settle_payments_in_flight: a click racing this one, or a cancel Stripe
        # did not answer. One waiting for 3-D Secure is handed back, so the student completes that one
        # rather than a second one they could complete too.
        in_flight = _one_off(account.payments).filter(status__in=Payment.IN_FLIGHT).order_by("-created_at", "-pk")
        in_flight = in_flight.first()
        if in_flight is not None and in_flight.status == Payment.Status.REQUIRES_ACTION:
            in_flight.handed_back = True
            return in_flight
        if in_flight is not None:
            raise PaymentInProgress()
        payment = Payment.objects.create(
            account=account,
            plan=plan,
            kind=offer.kind,
            renewed_lot=renewed_lot,
            amount_cents=plan.price_cents,
            currency=plan.currency,
            minutes=plan.minutes,
            validity_days=plan.validity_days,
            payment_method=card,
            idempotency_key=offer.nonce,
        )
    payment = _charge(payment)
    _fraud_rules_check(payment)
    return payment


def payment_open_unattended(*, account, plan, card, kind, idempotency_key):
    """A payment for `plan` on `card` that no click asked for (automatic top-up), made inside the
    caller's transaction under the account lock it holds, with the caller's idempotency key (a
    second one with the same key cannot be made). Charged by `payment_charge` once that commits."""
    if not transaction.get_connection().in_atomic_block:
        raise BillingError("An unattended payment is made only under its account's lock.")
    return Payment.objects.create(
        account=account,
        plan=plan,
        kind=kind,
        amount_cents=plan.price_cents,
        currency=plan.currency,
        minutes=plan.minutes,
        validity_days=plan.validity_days,
        payment_method=card,
        idempotency_key=idempotency_key,
    )


def payment_charge(*, payment):
    """Charge a payment made by `payment_open_unattended` off-session, exactly as a one-click purchase
    is charged and settled (hours and a receipt, a decline with its reason, or 3-D Secure for the
    student), then let the fraud rules look at the attempt."""
    payment = _charge(payment)
    _fraud_rules_check(payment)
    return payment


def payment_in_flight(*, account):
    """Whether one of the account's package payments is still unsettled (no second one starts)."""
    return _one_off(account.payments).filter(status__in=Payment.IN_FLIGHT).exists()


def _fraud_rules_check(payment):
    """The fraud rules after an attempt. They only raise flags for staff: whatever goes wrong in them
    is logged and never reaches the student's payment (the periodic scan looks again)."""
    try:
        with transaction.atomic():  # a savepoint: a failed check leaves the caller's transaction usable
            fraud_rules_check(account=payment.account, payment=payment)
    except Exception:
        logger.exception("The fraud rules could not check payment %s; the periodic scan looks again.", payment.pk)


def _payment_for_token(account, offer):
    payment = Payment.objects.filter(idempotency_key=offer.nonce, account=account).first()
    if payment:
        payment.replayed = True
    return payment


def _settle_payments_in_flight(account):
    """Before a new charge: ask Stripe about this account's unfinished payments. One whose answer
    never came may be settled by now; one waiting for 3-D Secure is cancelled, so that the student
    can never complete both it and the new one."""
    for payment in _one_off(account.payments).filter(status__in=Payment.IN_FLIGHT):
        _payment_reconcile(payment)


def _one_off(payments):
    """Payments for packages. A subscription's invoices are Stripe's to retry and cancel, never ours
    (billing.subscriptions settles them), and one waiting for 3-D Secure does not hold a package back."""
    return payments.filter(subscription__isnull=True)


def payments_abandon_for_blocked(*, account_id):
    """After a block: cancel the account's payments still waiting for 3-D Secure, so that none can be
    completed from a page or an alert link. A cancel Stripe does not answer is left to
    `payments_reconcile`, which cancels those of blocked accounts at its next run."""
    account = Account.objects.get(pk=account_id)
    if account.blocked_at is None:
        return []  # unblocked again before this ran
    waiting = _one_off(account.payments).filter(status=Payment.Status.REQUIRES_ACTION)
    return [_payment_reconcile(payment) for payment in waiting]


def payment_abandon(*, payment):
    """Cancel a payment still waiting for 3-D Secure, so it can never be completed any more."""
    if payment.status != Payment.Status.REQUIRES_ACTION:
        return payment
    try:
        return payment_intent_settle(intent=stripe_gateway.payment_intent_cancel(payment.stripe_payment_intent_id))
    except BillingError:
        logger.warning("Could not cancel the 3-D Secure payment %s; it stays pending.", payment.pk, exc_info=True)
        return payment


def payments_reconcile():
    """Settle payments whose answer never came (processing); cancel those whose 3-D Secure was left
    unfinished for a day, or whose account has been blocked since. Returns the payments as they
    stand afterwards.

    When many are due, Stripe's listing of the PaymentIntents created over their time span answers
    for them a page (100 intents) at a time; Stripe is asked about each one it did not bring."""
    now = timezone.now()
    stuck = Q(status=Payment.Status.PROCESSING, created_at__lte=now - STUCK_AFTER)
    abandoned = Q(status=Payment.Status.REQUIRES_ACTION, updated_at__lte=now - ABANDONED_AFTER)
    blocked = Q(status=Payment.Status.REQUIRES_ACTION, account__blocked_at__isnull=False)
    due = list(_one_off(Payment.objects).filter(stuck | abandoned | blocked).select_related("account").order_by("pk"))
    listed = _payments_reconcile_listed(due)
    return [
        _cancel_give_up_when_overdue(
            listed[payment.pk] if payment.pk in listed else _payment_reconcile(payment),
            blocked_at=payment.account.blocked_at,
            now=now,
        )
        for payment in due
    ]


def _payments_reconcile_listed(due):
    """Reconcile the payments of `due` that Stripe's listing brings, each as soon as its page comes
    (so no answer acted on is older than a page). Returns {payment pk: payment as it stands}: empty
    when too few are due for a listing to pay off, or when Stripe does not list (the stand-in refuses
    the date filter). A payment without an intent id is matched by its metadata, as
    `payment_intent_find` would; one the listing does not bring proves nothing, and is looked for."""
    by_intent = {payment.stripe_payment_intent_id: payment for payment in due if payment.stripe_payment_intent_id}
    pages_worth_reading = len(due) // LISTED_PER_PAGE_AT_LEAST
    if not pages_worth_reading:
        return {}
    by_metadata = {
        (str(payment.pk), str(payment.account_id)): payment for payment in due if not payment.stripe_payment_intent_id
    }
    # An intent is created after its payment, within the slowest charge request; a minute of clock
    # skew between us and Stripe either side, as in payment_intent_find.
    since = min(payment.created_at for payment in due) - timedelta(minutes=1)
    until = max(payment.created_at for payment in due) + _orphan_after() + timedelta(minutes=1)
    reconciled = {}
    try:
        for number, intents in enumerate(stripe_gateway.payment_intents_created(since=since, until=until), start=1):
            for intent in intents:
                ours = (intent.metadata.get("payment_id"), intent.metadata.get("account_id"))
                payment = by_intent.pop(intent.id, None) or by_metadata.pop(ours, None)
                if payment is not None:
                    reconciled[payment.pk] = _payment_reconcile(payment, intent=intent)
            if not (by_intent or by_metadata) or number >= pages_worth_reading:
                break
    except Exception:  # Stripe refused, did not answer, or answered what we cannot read
        logger.warning("Stripe did not list PaymentIntents; those left are asked about one by one.", exc_info=True)
    return reconciled


def _cancel_give_up_when_overdue(payment, *, blocked_at, now):
    """A payment still waiting for 3-D Secure a day after its cancel became due (the account's block,
    or the check abandoned for ABANDONED_AFTER): Stripe keeps refusing the cancel. It goes to staff
    (who cancel it in the Dashboard) rather than to the log every five minutes; the student cannot
    complete it from our pages meanwhile (only a payment waiting for 3-D Secure gets a client secret)."""
    if payment.status != Payment.Status.REQUIRES_ACTION:
        return payment
    # Abandoned counts from its start: a refresh that reaches Stripe touches updated_at every time.
    abandoned_at = payment.created_at + ABANDONED_AFTER
    if blocked_at is not None and blocked_at < abandoned_at:
        due_since, why = blocked_at, "since the account was blocked"
    else:
        due_since, why = abandoned_at, "since it was abandoned"
    if now - due_since < CANCEL_GIVEN_UP_AFTER:
        return payment
    message = (
        f"Stripe did not cancel PaymentIntent {payment.stripe_payment_intent_id} (waiting for 3-D Secure) in the day "
        f"{why}. Cancel it in Stripe's Dashboard. No hours were added."
    )
    return _review(
        payment, code=Failure.CANCEL_REFUSED, message=message, unless_moved_from=Payment.Status.REQUIRES_ACTION
    )


def _payment_reconcile(payment, *, intent=None):
    """Settle one unfinished payment from Stripe's answer (`intent`, when a listing brought it; else
    Stripe is asked), cancelling it if it still waits for 3-D Secure. Whatever goes wrong is logged
    and leaves the payment as it was: one payment nobody can settle must not stop the others, nor
    turn the student's next click into an error page."""
    try:
        if intent is None:
            current = payment_refresh(payment=payment)
        else:
            # Found by its metadata, the payment is left to payment_intent_settle's own rule (both ids).
            named = payment if payment.stripe_payment_intent_id == intent.id else None
            current = payment_intent_settle(intent=intent, payment=named)
        return payment_abandon(payment=current)
    except Exception:
        logger.exception(
            "Could not reconcile payment %s; it stays as it is for the next run and for staff.", payment.pk
        )
        return payment


def payment_refresh(*, payment):
    """Ask Stripe how a payment stands and settle it: after 3-D Secure, while polling an unknown
    outcome, and from the reconciliation job. Stripe unreachable leaves it as it is; an answer that
    cannot be read raises ProviderAnswerUnreadable."""
    if payment.final or payment.status == Payment.Status.FAILED:
        return payment
    if payment.status == Payment.Status.NEEDS_REVIEW and not payment.stripe_payment_intent_id:
        return payment  # its search was given up: only Stripe's own event can still name its intent
    if payment.for_subscription and not payment.stripe_payment_intent_id:
        return payment  # an invoice not attempted yet: billing.subscriptions reads it from the invoice
    try:
        if payment.stripe_payment_intent_id:
            intent = stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)
        else:
            intent = stripe_gateway.payment_intent_find(
                customer_id=payment.account.stripe_customer_id, payment_id=payment.pk, created_at=payment.created_at
            )
    except ProviderSearchIncomplete as incomplete:
        if timezone.now() - payment.created_at <= ABANDONED_AFTER:
            logger.warning(
                "Payment %s not found at Stripe yet: %s It is looked for again later.", payment.pk, incomplete
            )
            return payment
        # Still not found a day on: searching every five minutes would only read the same intents
        # again, and the student could never buy while it is processing.
        message = f"{incomplete} Look for metadata payment_id {payment.pk} in Stripe's Dashboard. No hours were added."
        return _review(
            payment, code=Failure.INTENT_NOT_FOUND, message=message, unless_moved_from=Payment.Status.PROCESSING
        )
    except ProviderAnswerUnreadable:
        raise  # not an outage that passes: the caller leaves the payment as it is, and logs it for staff
    except BillingError:
        logger.warning("Could not ask Stripe about payment %s; it is checked again later.", payment.pk, exc_info=True)
        return payment
    if intent is not None:
        return payment_intent_settle(intent=intent)
    if timezone.now() - payment.created_at > _orphan_after():
        return _fail(payment, code=Failure.NOT_CHARGED, message=NOT_CHARGED)
    return payment


def _orphan_after():
    """How long after it started a payment with no PaymentIntent at Stripe counts as never charged:
    longer than the slowest charge request (every retry timing out) could still be running."""
    slowest_request = settings.STRIPE_TIMEOUT_SECONDS * (settings.STRIPE_MAX_NETWORK_RETRIES + 1)
    return max(ORPHAN_AFTER, timedelta(seconds=slowest_request + 60))


def payment_intent_settle(*, intent, payment=None):
    """Bring our Payment (`payment`, or the one the intent names) in line with a PaymentIntent from
    Stripe (a charge answer, a refresh or a webhook). Idempotent and order-tolerant: hours are
    credited once, a settled payment stays so."""
    found = payment or _payment_for_intent(intent)
    if found is None:
        raise UnknownPaymentIntent(f"No payment for PaymentIntent {intent.id}.")
    with transaction.atomic():
        # Account first, then payment: the same lock order as every other writer of this account.
        ledger.account_lock(account_id=found.account_id)
        payment = Payment.objects.select_for_update().get(pk=found.pk)
        if payment.final:
            return payment
        payment.stripe_payment_intent_id = intent.id or payment.stripe_payment_intent_id
        charged = intent.status == StripeStatus.SUCCEEDED
        credited = charged and (intent.amount_cents, intent.currency) == (payment.amount_cents, payment.currency)
        if credited:
            _credit(payment)
        elif charged:
            _leave_for_review(payment, intent)
        elif payment.status == Payment.Status.NEEDS_REVIEW:
            pass  # still not charged: it stays with staff, who now see its intent
        elif intent.status == StripeStatus.REQUIRES_ACTION:
            payment.status = Payment.Status.REQUIRES_ACTION
        elif intent.status == StripeStatus.CANCELED:
            # Real Stripe keeps the off-session attempt's last_payment_error (authentication_required)
            # on a cancelled intent: it is still a cancellation, not a decline, and no alert.
            _settle(payment, status=Payment.Status.FAILED, code=Failure.CANCELED, message=CANCELLED)
        elif intent.status == StripeStatus.REQUIRES_PAYMENT_METHOD:
            code = intent.failure_code or intent.status
            _settle(
                payment,
                status=Payment.Status.FAILED,
                code=code,
                message=intent.failure_message or stripe_gateway.decline_message(""),
            )
        payment.save()
        if credited:
            receipt_issue(payment=payment)  # its number is allocated in this same transaction
    return payment


def _settle(payment, *, status, code, message):
    """Settle without hours: failed, or left for staff (needs review), with the reason in words."""
    payment.status = status
    payment.failure_code = code
    payment.failure_message = message
    payment.settled_at = timezone.now()


def _leave_for_review(payment, intent):
    """Stripe charged another amount than we asked: no hours, and the payment waits for staff (in the
    console's "needs review"), who can see the intent and refund or correct it."""
    logger.error(
        "PaymentIntent %s of payment %s charged %s %s.", intent.id, payment.pk, intent.amount_cents, intent.currency
    )
    charged = money_text(intent.amount_cents, intent.currency)
    expected = money_text(payment.amount_cents, payment.currency)
    payment.stripe_amount_cents, payment.stripe_currency = intent.amount_cents, intent.currency
    _settle(
        payment,
        status=Payment.Status.NEEDS_REVIEW,
        code=Failure.AMOUNT_MISMATCH,
        message=f"Stripe charged {charged} instead of {expected}. No hours were added.",
    )


def _review(payment, *, code, message, unless_moved_from):
    """Leave `payment` for staff with a reason they can act on, unless it has left the status
    `unless_moved_from` meanwhile (a webhook settled it)."""
    with transaction.atomic():
        ledger.account_lock(account_id=payment.account_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.status == unless_moved_from:
            logger.error("Payment %s is left for staff review: %s", payment.pk, message)
            _settle(payment, status=Payment.Status.NEEDS_REVIEW, code=code, message=message)
            payment.save()
    return payment


def _payment_for_intent(intent):
    by_intent = Payment.objects.filter(stripe_payment_intent_id=intent.id).first()
    if by_intent:
        return by_intent
    try:
        payment_id = int(intent.metadata.get("payment_id", ""))
        account_id = int(intent.metadata.get("account_id", ""))
    except ValueError:
        return None
    # Both ids must match: an intent made elsewhere on the same Stripe account cannot touch ours.
    return Payment.objects.filter(pk=payment_id, account_id=account_id, stripe_payment_intent_id__isnull=True).first()


def payment_paid_record(*, payment, intent_id, amount_cents, currency):
    """Stripe says `payment` is paid (`amount_cents` in `currency`) without a PaymentIntent to read:
    a subscription invoice marked paid. Settled as a PaymentIntent that succeeded would be."""
    paid = stripe_gateway.PaymentIntent(
        id=intent_id,
        status=StripeStatus.SUCCEEDED,
        amount_cents=amount_cents,
        currency=currency,
        client_secret="",
        payment_method_id=None,
    )
    return payment_intent_settle(intent=paid, payment=payment)


def _credit(payment):
    now = timezone.now()
    if payment.lot_expires_at:
        # A subscription period's lot. A period paid only after its hours would have expired (its
        # invoice settled very late) still gets its lot, for a minute: the money and the hours
        # agree, and the expiry job books the loss like any other.
        expires_at = max(payment.lot_expires_at, now + timedelta(minutes=1))
    else:
        expires_at = ledger.lot_expiry(purchased_at=now, validity_days=payment.validity_days)
    lot = ledger.lot_credit(
        account=payment.account,
        name=payment.lot_name or payment.plan.name,
        minutes=payment.minutes,
        plan=payment.plan,
        price_cents=payment.amount_cents,
        currency=payment.currency,
        purchased_at=now,
        expires_at=expires_at,
    )
    payment.lot = lot
    payment.status = Payment.Status.SUCCEEDED
    payment.failure_code = payment.failure_message = ""
    payment.settled_at = now


def _charge(payment):
    account = payment.account
    try:
        intent = stripe_gateway.payment_intent_charge_off_session(
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            customer_id=customer_ensure(account=account),
            payment_method_id=payment.payment_method.stripe_payment_method_id,
            metadata={"payment_id": payment.pk, "account_id": account.pk},
            idempotency_key=f"payment-{payment.idempotency_key}",
        )
    except PaymentDeclined as declined:
        return _fail(payment, code=declined.code, message=str(declined), intent_id=declined.payment_intent_id)
    except CardNotFound as gone:
        card_forget(card=payment.payment_method)
        return _fail(payment, code=Failure.CARD_NOT_FOUND, message=str(gone))
    except ProviderRequestInvalid:
        logger.exception("Stripe refused the charge for payment %s", payment.pk)
        return _fail(payment, code=Failure.REFUSED, message=REFUSED)
    except ProviderUnavailable as unavailable:
        if unavailable.maybe_charged:
            return payment  # outcome unknown: stays processing until a refresh or the webhook settles it
        return _fail(payment, code=Failure.PROVIDER_UNAVAILABLE, message=NOT_CHARGED)
    except Exception:
        # Whatever went wrong, Stripe may have charged: keep the payment for the refresh to settle.
        logger.exception("Unexpected error while charging payment %s", payment.pk)
        return payment
    return payment_intent_settle(intent=intent)


def payment_fail(*, payment, code, message):
    """Record that `payment` was not charged (a subscription invoice Stripe closed unpaid, say),
    unless it has been settled for good meanwhile."""
    return _fail(payment, code=code, message=message)


def _fail(payment, *, code, message, intent_id=None):
    with transaction.atomic():
        ledger.account_lock(account_id=payment.account_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.final or payment.status == Payment.Status.NEEDS_REVIEW:
            return payment
        _settle(payment, status=Payment.Status.FAILED, code=code, message=message)
        payment.stripe_payment_intent_id = payment.stripe_payment_intent_id or intent_id
        payment.save()
    return payment


# Failures that say nothing about the card: Stripe was not reached or made no charge (our own codes),
# or its processor erred (Stripe's processing_error, which asks to try again). Finance may retry these
# once. A decline is the bank's answer and is never repeated by us; nor is a payment the student
# cancelled, one Stripe refused as invalid (it would refuse it again) or one whose card is gone.
RETRYABLE_FAILURES = frozenset({Failure.PROVIDER_UNAVAILABLE, Failure.NOT_CHARGED, "processing_error"})
# A retry charges the card without the student present: only while the purchase is recent.
RETRY_WITHIN = timedelta(days=7)


class FailedPaymentRefused(BillingError):
    """A staff action on a failed payment (pay again, retry) that does not apply to it; nothing was
    sent or charged."""


def payment_again_refusal(*, payment):
    """Why the student cannot be asked to pay again for `payment` (staff's words), or "" when they
    can: a failed package payment, its package still on sale, the account not blocked, and no
    package paid for since. The dashboard's pay-again button follows the same rule."""
    if payment.status != Payment.Status.FAILED:
        return _("This payment is %(status)s, not failed; nothing was done.") % {
            "status": payment.get_status_display().lower()
        }
    if payment.for_subscription:
        return _(
            "This is a subscription invoice: Stripe retries it, and the student's subscription page offers "
            "Pay now; nothing was done."
        )
    if not payment.plan.is_active or payment.plan.is_subscription:
        return _("%(plan)s is no longer on sale; nothing was done.") % {"plan": payment.plan.name}
    if Account.objects.filter(pk=payment.account_id, blocked_at__isnull=False).exists():
        return _("This student's account is blocked, so they cannot buy; nothing was done.")
    if _paid_since(payment):
        return _("The student has paid for a package since this payment failed; nothing was done.")
    return ""


def payment_retry_refusal(*, payment):
    """Why Finance cannot retry `payment` (see payment_retry), or "" when they can."""
    if payment.retry_of_id is not None:
        return _("This payment is already the retry of payment %(payment)s; it is not retried again.") % {
            "payment": payment.retry_of_id
        }
    if (retry := Payment.objects.filter(retry_of=payment).first()) is not None:
        return _(
            "This payment was already retried once (payment %(payment)s, %(status)s); it is not retried again."
        ) % {"payment": retry.pk, "status": retry.get_status_display().lower()}
    if refusal := payment_again_refusal(payment=payment):
        return refusal
    if payment.failure_code not in RETRYABLE_FAILURES:
        return _(
            "This payment failed with “%(code)s”, which is not a processing error: only a "
            "payment that never reached the bank is retried. Ask the student to pay again instead."
        ) % {"code": payment.failure_code}
    if payment.payment_method is None or payment.payment_method.removed_at is not None:
        return _("The card of this payment has been removed; nothing was charged. Ask the student to pay again.")
    if timezone.now() - payment.created_at > RETRY_WITHIN:
        return _(
            "This payment failed more than %(days)s days ago: it is not charged without the student. "
            "Ask them to pay again instead."
        ) % {"days": RETRY_WITHIN.days}
    if _one_off(payment.account.payments).filter(status__in=Payment.IN_FLIGHT).exists():
        return _("Another payment of this student is in progress; try again once it is settled.")
    return ""


def payment_retry(*, payment, actor, reason, ip_address=None):
    """Finance's one retry of a package payment that failed without reaching the bank (see
    RETRYABLE_FAILURES): a new Payment (`retry_of` the failed one) for the same plan, amount, card,
    kind and renewed lot, charged off-session like a one-click purchase and settled like any other
    payment (hours and a receipt, a failure with its reason, or 3-D Secure for the student).

    Made under the account's lock, and at most once per failed payment (OneToOne): a double click or
    two concurrent requests make one retry and one charge; the later one is refused. Its Stripe
    idempotency key is derived from the failed payment. Audited on the failed payment. Raises
    FailedPaymentRefused (nothing charged) when payment_retry_refusal says why not."""
    reason = audit_reason(reason, _("Say why this payment is retried; it is kept in the audit log."))
    with transaction.atomic():
        ledger.account_lock(account_id=payment.account_id)
        failed = (
            Payment.objects.select_for_update(of=("self",)).select_related("plan", "payment_method").get(pk=payment.pk)
        )
        if refusal := payment_retry_refusal(payment=failed):
            raise FailedPaymentRefused(refusal)
        retry = Payment.objects.create(
            account_id=failed.account_id,
            plan=failed.plan,
            kind=failed.kind,
            renewed_lot_id=failed.renewed_lot_id,
            amount_cents=failed.amount_cents,
            currency=failed.currency,
            minutes=failed.minutes,
            validity_days=failed.validity_days,
            payment_method=failed.payment_method,
            idempotency_key=f"retry-{failed.pk}",
            retry_of=failed,
        )
        audit_record(
            actor=actor,
            action="payment.retry",
            target=failed,
            reason=reason,
            before={"status": failed.status, "failure_code": failed.failure_code},
            after={"retry_payment_id": retry.pk, "amount_cents": retry.amount_cents, "currency": retry.currency},
            ip_address=ip_address,
        )
    retry = _charge(retry)
    _fraud_rules_check(retry)
    return retry


def payment_again_offer(*, account, payment_id):
    """The account's failed payment `payment_id` when the dashboard may offer to pay it again (the
    link of a pay-again alert), else None: not theirs, not failed, or no longer payable."""
    payment = _one_off(account.payments).select_related("plan", "renewed_lot").filter(pk=payment_id).first()
    if payment is None or payment_again_refusal(payment=payment):
        return None
    return payment


def _paid_since(payment):
    return (
        _one_off(Payment.objects)
        .filter(account_id=payment.account_id, status=Payment.Status.SUCCEEDED, settled_at__gt=payment.created_at)
        .exists()
    )


def _plan_for_sale(offer):
    plan = Plan.objects.filter(pk=offer.plan_id).first()
    if plan is None or not plan.is_active or plan.is_subscription:
        raise PaymentRefused(_("This package is no longer on sale. Please choose another one."))
    promised = (offer.price_cents, offer.minutes, offer.currency, offer.validity_days)
    if (plan.price_cents, plan.minutes, plan.currency, plan.validity_days) != promised:
        raise PaymentRefused(
            _("%(plan)s has changed. Please check it on the page and try again.") % {"plan": plan.name}
        )
    return plan


def _renewed_lot(account, offer):
    if offer.renewed_lot_id is None:
        return None
    lot = Lot.objects.filter(pk=offer.renewed_lot_id, account=account).first()
    if lot is None:
        raise PaymentRefused(_(BUTTON_INVALID))
    return lot


def _card_to_charge(account, payment_method_id):
    cards = account.payment_methods.active()
    card = cards.filter(pk=payment_method_id).first() if payment_method_id else cards.filter(is_default=True).first()
    if card is None:
        if payment_method_id:
            raise PaymentRefused(_("That card is not one of your saved cards."))
        raise PaymentRefused(_("Please add a card first."))
    return card


def payment_client_secret(*, payment):
    """The secret Stripe.js needs to run 3-D Secure for this payment in the student's browser. Raises
    AccountBlocked for a blocked account, even while the cancel of its payments is on its way."""
    if Account.objects.filter(pk=payment.account_id, blocked_at__isnull=False).exists():
        raise AccountBlocked()
    return stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id).client_secret
