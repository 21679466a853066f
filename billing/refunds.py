"""Refunds: money back on a payment, and the lot's hours taken back for it, once per refund.

A refund reaches us from the Stripe webhook (made in the Dashboard) or is issued by staff in the
console. A console refund exists as "requested" before Stripe is called; whichever way its answer
comes (our own request's reply or the webhook, in either order), it is recorded once: by its Stripe
id, or by the portal_refund_id we put in its metadata. One whose answer was lost stays "requested"
until staff send it again or `refunds_reconcile` does; each sender claims it first, so two requests
for one refund are never on their way at once, and looks for it at Stripe first. One Stripe does not
have is sent again only while no other refund can have given its money back already; otherwise it
is failed, with the reason, for staff.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing import ledger, stripe_gateway
from billing.audit import audit_record
from billing.errors import BillingError, LotExpired, ProviderRequestInvalid, ProviderUnavailable
from billing.formatting import duration_text, money_text, reader_locale
from billing.models import Payment, Refund, share_of_minutes
from billing.receipts import credit_note_cancel, credit_note_issue

logger = logging.getLogger(__name__)

Status = Refund.Status
# A console refund still "requested" this long after it was made lost its request to Stripe (a
# request still running holds the refund's send claim, so the job leaves it alone anyway).
STUCK_AFTER = timedelta(minutes=3)
SEND_CLAIM_AT_LEAST = timedelta(minutes=5)
# Stripe honours an idempotency key for 24 hours; past that the job no longer sends a refund on its
# own, since by then staff may well have settled the money another way.
SEND_UNATTENDED_WITHIN = timedelta(hours=24)
CLOCK_SKEW_SECONDS = 60  # between our clock and Stripe's, when comparing creation times

# Why a refund was failed by us (Refund.failure_reason), as the console shows it. Stored in English
# (a job may fail a refund), only marked here: translated where staff read them, and when raised.
STRIPE_REFUSED = gettext_noop("Stripe refused the refund; nothing was refunded and no hours were taken back.")
NOT_SENT_OVER_PAID = gettext_noop(
    "Not sent: with the payment's other refunds it would give back more than was paid. Nothing was refunded."
)
NOT_SENT_OTHER_REFUND = gettext_noop(
    "Not sent again automatically: another refund of this payment was made meanwhile (in the Stripe "
    "Dashboard?). Nothing was refunded; refund again if money is still owed."
)
NOT_SENT_TOO_OLD = gettext_noop(
    "Not sent again automatically: Stripe had no answer for it within 24 hours. Nothing was refunded; "
    "refund again if money is still owed."
)


class SendOutcome(StrEnum):
    """What sending a "requested" refund again did (`Refund.send_outcome`)."""

    SENT = "sent"  # Stripe did not have it: asked for now, and answered
    FOUND = "found"  # Stripe had made it, its answer lost: recorded, nothing asked again
    ALREADY_ANSWERED = "already_answered"  # Stripe's answer (or event) had come meanwhile: nothing done


class RefundRefused(BillingError):
    """Staff asked for a refund we will not send (or Stripe would not make); nothing was refunded."""


class RefundBeingSent(BillingError):
    """Another request for this refund is on its way to Stripe: its answer settles the refund."""

    def __init__(self):
        super().__init__(_("This refund is being sent to Stripe right now; look again in a minute."))


@dataclass(frozen=True)
class RefundDefaults:
    """What the console's refund form offers for a payment."""

    refundable_cents: int  # the payment's amount less every refund not failed or canceled
    unused_minutes: int  # what is left of the payment's lot (0 once it has expired)
    default_minutes: int  # the amount's pro-rata share of the payment's hours, at most what is unused


def refund_defaults(*, payment, amount_cents=None):
    """The limits of a new refund of `payment`, and the hours to take back for `amount_cents`
    (default: all that can still be refunded).

    The default is the share of everything refunded once this is, less the share of what was
    refunded before: rounding each refund's share on its own would drift (20 refunds of EUR 0.13
    of EUR 150.00 for 10 h: 20 x 1 minute), this way the defaults add up to the share of their sum.
    It depends on the earlier amounts only, not on the hours staff chose for them, so a refund
    made money-only is not taken back by the next one's default."""
    refundable_cents = _refundable_cents(payment)
    unused_minutes = ledger.lot_unused_minutes(lot=payment.lot) if payment.lot_id else 0
    amount_cents = refundable_cents if amount_cents is None else amount_cents
    refunded_cents = payment.amount_cents - refundable_cents

    def share(part_cents):
        return share_of_minutes(payment.minutes, part_cents=part_cents, whole_cents=payment.amount_cents)

    due = share(refunded_cents + max(amount_cents, 0)) - share(refunded_cents)
    return RefundDefaults(
        refundable_cents=refundable_cents,
        unused_minutes=unused_minutes,
        default_minutes=min(due, unused_minutes),
    )


def refund_issue(*, payment, amount_cents, minutes, reason, actor, ip_address=None, request_key=None):
    """Refund `amount_cents` of a succeeded payment to the card and take `minutes` of its lot back
    (0: money only). Returns the Refund as Stripe left it (succeeded or pending, hours taken).

    `request_key` names one confirmation of the console's form: the same confirmation posted twice
    (a double click, a resent form) returns the refund it made instead of refunding again.

    Raises RefundRefused (nothing refunded) when a limit is broken or Stripe refuses the refund, and
    ProviderUnavailable when Stripe's answer was lost: the refund then stays "requested" (the
    exception's `refund`) until `refund_send` sends it again or the webhook settles it.
    """
    reason = reason.strip()
    with transaction.atomic():
        # Under the account lock, and counting refunds still "requested", so that two refunds
        # racing on one payment can never together exceed its amount or its lot's hours.
        ledger.account_lock(account_id=payment.account_id)
        payment = Payment.objects.select_related("lot").get(pk=payment.pk)
        idempotency_key = f"refund-{request_key or secrets.token_hex(16)}"[:64]
        already = Refund.objects.filter(payment=payment, idempotency_key=idempotency_key).first()
        if already is not None:
            return already
        limits = refund_defaults(payment=payment, amount_cents=amount_cents)
        _refund_check(payment, amount_cents=amount_cents, minutes=minutes, reason=reason, limits=limits)
        claim = timezone.now()
        refund = Refund.objects.create(
            payment=payment,
            idempotency_key=idempotency_key,
            amount_cents=amount_cents,
            currency=payment.charged_currency,
            status=Status.REQUESTED,
            minutes_requested=minutes,
            reason=reason,
            requested_by=actor,
            sending_since=claim,  # claimed from birth: nobody else sends it while this request runs
        )
        _audit_refund_create(refund, limits=limits, actor=actor, ip_address=ip_address)
    try:
        return _send(refund)
    finally:
        _send_release(refund, claim)


def refund_send(*, refund, actor=None, ip_address=None):
    """Send a refund still "requested" (its answer was lost) to Stripe again, and record the answer.
    A refund already answered is returned as it is. The refund's `send_outcome` says which of these
    happened (sent, found at Stripe, already answered). Raises as `refund_issue` does, and
    RefundBeingSent while another request for it is on its way. One that Stripe does not have and
    that would, with the payment's other refunds, give back more than was paid is failed instead
    (RefundRefused). Staff's "send again" (`actor`) is audited."""
    return _resend(refund, unattended=False, actor=actor, ip_address=ip_address)


def refunds_reconcile():
    """Settle console refunds left "requested" over STUCK_AFTER ago (their request crashed or timed
    out): adopt the refund Stripe made for one, or send one Stripe never received again, under its
    own idempotency key. Safe against a double refund because every sender claims the refund first
    and looks for it at Stripe before asking for it. Each refund on its own: one that fails is
    logged and tried by the next run. Returns the refunds it settled (no longer "requested").

    Unattended, it sends one again only while nothing else can have refunded that money: a refund
    over SEND_UNATTENDED_WITHIN old, or with another refund of its payment made since (in the
    Dashboard, while Stripe did not answer us), is failed, with the reason, for staff to decide."""
    stuck = Refund.objects.filter(status=Status.REQUESTED, created_at__lte=timezone.now() - STUCK_AFTER)
    settled = []
    for refund in stuck.order_by("pk"):
        try:
            refund = _resend(refund, unattended=True)
        except RefundBeingSent:
            continue  # its own request (or staff's "send again") is still running
        except RefundRefused as refused:
            refund.refresh_from_db()
            logger.warning("Refund %s was not sent again and is failed: %s", refund.pk, refused)
        except Exception:
            logger.exception("Could not reconcile refund %s; the next run tries again.", refund.pk)
            continue
        if refund.status != Status.REQUESTED:
            settled.append(refund)
    return settled


def refund_record(*, payment, stripe_refund_id, amount_cents, currency, status, portal_refund_id=None):
    """Record a refund (or its new status) and move the lot's hours to match. Idempotent.

    `portal_refund_id` (from the refund's metadata) names a console refund whose Stripe id we may
    not know yet (the webhook came before our own answer): that row is completed, not doubled.
    """
    status = Status(status)
    with transaction.atomic():
        ledger.account_lock(account_id=payment.account_id)
        payment = Payment.objects.select_related("lot").get(pk=payment.pk)
        refund = _refund_for(payment, stripe_refund_id, portal_refund_id)
        if refund is None:
            refund = Refund(payment=payment, amount_cents=amount_cents, currency=currency.upper())
        elif not _takes_status(refund, status):
            return refund  # a late or repeated snapshot: hours, status and documents stay as they are
        was_applied = refund.pk is not None and refund.status in Refund.APPLIED
        refund.stripe_refund_id = stripe_refund_id
        refund.status = status
        refund.failure_reason = ""  # Stripe's word replaces any failure of our own
        minutes_given_back = 0
        if status in Refund.APPLIED and not was_applied:
            _take_hours_back(refund, payment)
        elif status in Refund.UNDONE:
            minutes_given_back = _give_hours_back(refund, payment)
        refund.save()
        if status == Status.SUCCEEDED:
            credit_note_issue(refund=refund)  # once the money has really gone back; issued at most once
        elif status in Refund.UNDONE:
            # The money never reached the card after all: its credit note, if one was issued, no
            # longer holds and is cancelled by a document of its own (issued documents never change).
            credit_note_cancel(refund=refund, minutes_given_back=minutes_given_back)
    return refund


def _takes_status(refund, status):
    """Whether a recorded refund takes a status Stripe reports for it. A failure of our own (Stripe
    refused one request of ours, or we left the refund unsent) was never Stripe's word on the
    money: whatever Stripe later says about the refund overrides it."""
    if refund.status == Status.FAILED and refund.stripe_refund_id is None:
        return True
    return Status(refund.status).may_become(status)


def _refundable_cents(payment):
    refunded = payment.refunds.exclude(status__in=Refund.UNDONE).values_list("amount_cents", flat=True)
    return payment.charged_cents - sum(refunded)


def _refund_check(payment, *, amount_cents, minutes, reason, limits):
    currency = payment.charged_currency
    # A payment left for review is refundable too when Stripe charged it: for what it charged.
    if not payment.charged:
        raise RefundRefused(
            _("Only a payment Stripe charged can be refunded; this one is %(status)s.")
            % {"status": payment.get_status_display()}
        )
    if not payment.stripe_payment_intent_id:
        raise RefundRefused(_("This payment has no Stripe PaymentIntent, so it cannot be refunded here."))
    if not reason:
        raise RefundRefused(_("Give a reason for the refund; it is kept in the audit log."))
    in_flight = payment.refunds.filter(status=Status.REQUESTED).first()
    if in_flight:
        raise RefundRefused(
            _(
                "Another refund of this payment (%(amount)s) is still waiting for Stripe's answer. "
                "Send it again, or wait for Stripe, before refunding more."
            )
            % {"amount": money_text(in_flight.amount_cents, in_flight.currency)}
        )
    if limits.refundable_cents <= 0:
        raise RefundRefused(_("Nothing is left to refund on this payment."))
    if amount_cents < 1:
        raise RefundRefused(_("The refund must be at least %(amount)s.") % {"amount": money_text(1, currency)})
    if amount_cents > limits.refundable_cents:
        raise RefundRefused(
            _("At most %(amount)s can still be refunded.") % {"amount": money_text(limits.refundable_cents, currency)}
        )
    if minutes < 0:
        raise RefundRefused(_("The hours to take back cannot be negative; take back 0 h for a refund of money only."))
    if minutes > limits.unused_minutes:
        if not limits.unused_minutes:
            raise RefundRefused(_("No hours of this payment are left unused; take back 0 h (money only)."))
        raise RefundRefused(
            _("At most %(hours)s of this payment's hours are left unused to take back.")
            % {"hours": duration_text(limits.unused_minutes)}
        )


def _audit_refund_create(refund, *, limits, actor, ip_address):
    audit_record(
        actor=actor,
        action="refund.create",
        target=refund,
        reason=refund.reason,
        before={"refundable_cents": limits.refundable_cents, "unused_minutes": limits.unused_minutes},
        after={
            "amount_cents": refund.amount_cents,
            "currency": refund.currency,
            "minutes": refund.minutes_requested,
            "status": refund.status,
            "payment_intent": refund.payment.stripe_payment_intent_id,
        },
        ip_address=ip_address,
    )


def _send_claim_timeout():
    """How long a send claim holds: longer than the slowest refund request (every retry timing
    out) could still be running, after which its sender is taken for dead."""
    slowest_request = settings.STRIPE_TIMEOUT_SECONDS * (settings.STRIPE_MAX_NETWORK_RETRIES + 1)
    return max(SEND_CLAIM_AT_LEAST, timedelta(seconds=slowest_request + 60))


def _send_claim(refund):
    """Claim a "requested" refund for one request to Stripe. Returns the claim, or None when
    another sender holds it. One conditional UPDATE, so two senders can never both win."""
    now = timezone.now()
    free = Q(sending_since__isnull=True) | Q(sending_since__lte=now - _send_claim_timeout())
    claimed = Refund.objects.filter(free, pk=refund.pk, status=Status.REQUESTED).update(sending_since=now)
    return now if claimed else None


def _send_release(refund, claim):
    # Only our own claim: a sender taken for dead must not release the claim of the one after it.
    Refund.objects.filter(pk=refund.pk, sending_since=claim).update(sending_since=None)


def _resend(refund, *, unattended, actor=None, ip_address=None):
    refund = Refund.objects.select_related("payment").get(pk=refund.pk)
    if refund.status != Status.REQUESTED:
        return _with_outcome(refund, SendOutcome.ALREADY_ANSWERED)
    claim = _send_claim(refund)
    if claim is None:
        raise RefundBeingSent()
    try:
        if actor is not None:
            audit_record(actor=actor, action="refund.send", target=refund, ip_address=ip_address)
        return _send_again(refund, unattended=unattended)
    finally:
        _send_release(refund, claim)


def _send_again(refund, *, unattended):
    # Stripe may have made it although its answer never came. Stripe's idempotency key would
    # replay it, but only for 24 hours (and localstripe ignores keys): look for it first.
    try:
        at_stripe = stripe_gateway.refunds_for(refund.payment.stripe_payment_intent_id)
    except ProviderUnavailable as unavailable:
        unavailable.refund = refund
        raise
    made = _made_at_stripe(refund, at_stripe)
    if made is not None:
        return _with_outcome(_record_answer(refund, made), SendOutcome.FOUND)
    refund = _resend_vet(refund, at_stripe=at_stripe, unattended=unattended)
    if refund.status != Status.REQUESTED:
        return _with_outcome(refund, SendOutcome.ALREADY_ANSWERED)
    return _with_outcome(_send(refund), SendOutcome.SENT)


def _with_outcome(refund, outcome):
    refund.send_outcome = outcome
    return refund


def _resend_vet(refund, *, at_stripe, unattended):
    """The refund as it is now; failed (RefundRefused) when it must not be sent again. Under the
    account lock, as a new refund is checked, so the refunds it counts cannot change meanwhile."""
    with transaction.atomic():
        ledger.account_lock(account_id=refund.payment.account_id)
        refund = Refund.objects.select_related("payment").get(pk=refund.pk)
        # Not "requested" any more: Stripe's event for it came while we looked for it.
        refusal = refund.status == Status.REQUESTED and _resend_refusal(refund, at_stripe, unattended=unattended)
        if refusal:
            _refund_fail_locked(refund, reason=refusal)
    if refusal:
        raise RefundRefused(_(refusal))
    return refund


def _resend_refusal(refund, at_stripe, *, unattended):
    """Why `refund`, which Stripe's listing `at_stripe` does not hold, must not be sent again ("":
    it may). Both our records and Stripe's listing count: a Dashboard refund's event may not have
    reached us yet."""
    payment = refund.payment
    others = payment.refunds.exclude(pk=refund.pk)
    recorded_cents = sum(others.exclude(status__in=Refund.UNDONE).values_list("amount_cents", flat=True))
    stripe_cents = sum(listed["amount"] for listed in at_stripe if listed.get("status") not in Refund.UNDONE)
    if max(recorded_cents, stripe_cents) + refund.amount_cents > payment.charged_cents:
        return NOT_SENT_OVER_PAID
    if not unattended:
        return ""  # staff see the payment's refunds and decide
    if timezone.now() - refund.created_at > SEND_UNATTENDED_WITHIN:
        return NOT_SENT_TOO_OLD
    since = int(refund.created_at.timestamp()) - CLOCK_SKEW_SECONDS
    if others.filter(created_at__gte=refund.created_at).exists() or any(
        listed["created"] >= since for listed in at_stripe
    ):
        return NOT_SENT_OTHER_REFUND
    return ""


def _send(refund):
    payment = refund.payment
    try:
        made = stripe_gateway.refund_create(
            payment_intent_id=payment.stripe_payment_intent_id,
            amount_cents=refund.amount_cents,
            metadata={"portal_refund_id": refund.pk},
            idempotency_key=refund.idempotency_key,
        )
    except ProviderRequestInvalid as refused:
        _refund_fail(refund, reason=STRIPE_REFUSED)
        raise RefundRefused(_(STRIPE_REFUSED)) from refused
    except ProviderUnavailable as unavailable:
        unavailable.refund = refund  # still "requested": the console offers to send it again
        raise
    return _record_answer(refund, made)


def _record_answer(refund, made):
    return refund_record(
        payment=refund.payment,
        stripe_refund_id=made.id,
        amount_cents=made.amount_cents,
        currency=made.currency,
        status=made.status,
        portal_refund_id=refund.pk,
    )


def _made_at_stripe(refund, at_stripe):
    """The Stripe refund made for our `refund` (found by its metadata in the listing), or None."""
    wanted = str(refund.pk)
    for listed in at_stripe:
        if str((listed.get("metadata") or {}).get("portal_refund_id")) == wanted:
            return stripe_gateway.Refund(
                id=listed["id"],
                status=listed.get("status") or Status.SUCCEEDED,
                amount_cents=int(listed["amount"]),
                currency=listed["currency"].upper(),
                metadata=listed.get("metadata") or {},
            )
    return None


def _refund_fail(refund, *, reason):
    with transaction.atomic():
        ledger.account_lock(account_id=refund.payment.account_id)
        _refund_fail_locked(refund, reason=reason)
    refund.refresh_from_db()


def _refund_fail_locked(refund, *, reason):
    # Only a refund still waiting: nothing was applied, so no hours move.
    Refund.objects.filter(pk=refund.pk, status=Status.REQUESTED).update(status=Status.FAILED, failure_reason=reason)


def _refund_for(payment, stripe_refund_id, portal_refund_id):
    """The Refund row a Stripe refund belongs to: by its Stripe id, else the console refund named in
    its metadata while that one still awaits its Stripe id."""
    found = Refund.objects.select_for_update().filter(stripe_refund_id=stripe_refund_id).first()
    if found is not None or portal_refund_id is None:
        return found
    try:
        portal_refund_id = int(portal_refund_id)
    except (TypeError, ValueError):
        return None
    found = (
        Refund.objects.select_for_update()
        .filter(pk=portal_refund_id, payment=payment, stripe_refund_id__isnull=True)
        .first()
    )
    if found is None:
        # Already matched to another Stripe refund (or not a refund of this payment): a second
        # refund at Stripe for one request, which Stripe's idempotency key prevents but localstripe
        # does not. The money did go back, so it is recorded as a refund of its own.
        logger.warning(
            "Stripe refund %s names portal refund %s, which it cannot complete.", stripe_refund_id, portal_refund_id
        )
    return found


def _take_hours_back(refund, payment):
    """Take the refund's hours back from the lot, at most what is left unused: hours already used
    are not taken back, they are recorded as the refund's shortfall (and its credit note says so)."""
    chosen = refund.minutes_requested  # by staff in the console (0: money only)
    due = chosen if chosen is not None else _pro_rata_minutes_due(refund, payment)
    if payment.lot_id is None:
        due = 0  # it credited no hours (left for review): none to take back, none "already used"
    available = ledger.lot_unused_minutes(lot=payment.lot) if payment.lot else 0
    taken = min(due, available)
    if taken:
        # The entry's reason is stored text the student reads in their lot's history: in their language.
        with reader_locale(payment.account.user):
            reason = _("Refund %(refund)s") % {"refund": refund.stripe_refund_id}
        ledger.lot_reverse(lot=payment.lot, minutes=taken, reason=reason, actor=refund.requested_by)
    refund.minutes_reversed = taken
    refund.minutes_short = due - taken


def _pro_rata_minutes_due(refund, payment):
    """The minutes a refund made without staff's choice (in the Dashboard) stands for: the share of
    all such refunds of the payment so far, less what the earlier ones stood for. Rounding each
    refund on its own would drift (20 refunds of EUR 0.13 of EUR 150.00 for 10 h: 20 x 1 minute
    instead of 10); this way their minutes always add up to the share of their sum."""
    earlier = (
        payment.refunds.filter(status__in=Refund.APPLIED, minutes_requested__isnull=True)
        .exclude(pk=refund.pk)
        .aggregate(cents=Sum("amount_cents"), minutes=Sum(F("minutes_reversed") + F("minutes_short")))
    )
    refunded_cents = (earlier["cents"] or 0) + refund.amount_cents
    share = share_of_minutes(payment.minutes, part_cents=refunded_cents, whole_cents=payment.amount_cents)
    # Never negative: after an earlier refund failed, the others may stand for a minute more.
    return max(share - (earlier["minutes"] or 0), 0)


def _give_hours_back(refund, payment):
    """Give back what the refund took from the lot (a correction of our own reversal, booked as an
    adjustment naming the refund). Returns the minutes given back: none once the lot has expired,
    since they would have expired with it."""
    given_back = refund.minutes_reversed
    if given_back:
        with reader_locale(payment.account.user):
            number = {"refund": refund.stripe_refund_id}
            if refund.status == Status.CANCELED:
                reason = _("Refund %(refund)s canceled") % number
            else:
                reason = _("Refund %(refund)s failed") % number
        try:
            ledger.lot_adjust(lot=payment.lot, minutes=given_back, reason=reason)
        except LotExpired:
            given_back = 0
    refund.minutes_reversed = 0
    refund.minutes_short = 0
    return given_back
