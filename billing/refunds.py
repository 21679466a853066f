"""Refunds: money back on a payment, and the lot's hours taken back for it, once per refund.

A refund reaches us from the Stripe webhook (made in the Dashboard) or is issued by staff in the
console. A console refund exists as "requested" before Stripe is called; whichever way its answer
comes (our own request's reply or the webhook, in either order), it is recorded once: by its Stripe
id, or by the portal_refund_id we put in its metadata.
"""

import contextlib
import logging
import secrets
from dataclasses import dataclass

from django.db import transaction

from billing import ledger, stripe_gateway
from billing.audit import audit_record
from billing.errors import BillingError, LotExpired, ProviderRequestInvalid, ProviderUnavailable
from billing.formatting import duration_text, money_text
from billing.models import Payment, Refund, share_of_minutes
from billing.receipts import credit_note_issue

logger = logging.getLogger(__name__)

Status = Refund.Status


class RefundRefused(BillingError):
    """Staff asked for a refund we will not send (or Stripe would not make); nothing was refunded."""


@dataclass(frozen=True)
class RefundDefaults:
    """What the console's refund form offers for a payment."""

    refundable_cents: int  # the payment's amount less every refund not failed or canceled
    unused_minutes: int  # what is left of the payment's lot (0 once it has expired)
    default_minutes: int  # the amount's share of the payment's hours, at most what is unused


def refund_defaults(*, payment, amount_cents=None):
    """The limits of a new refund of `payment`, and the hours to take back for `amount_cents`
    (default: all that can still be refunded)."""
    refundable_cents = _refundable_cents(payment)
    unused_minutes = ledger.lot_unused_minutes(lot=payment.lot) if payment.lot_id else 0
    amount_cents = refundable_cents if amount_cents is None else amount_cents
    due = share_of_minutes(payment.minutes, part_cents=max(amount_cents, 0), whole_cents=payment.amount_cents)
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
        refund = Refund.objects.create(
            payment=payment,
            idempotency_key=idempotency_key,
            amount_cents=amount_cents,
            currency=payment.currency,
            status=Status.REQUESTED,
            minutes_requested=minutes,
            reason=reason,
            requested_by=actor,
        )
        _audit_refund_create(refund, limits=limits, actor=actor, ip_address=ip_address)
    return _send(refund)


def refund_send(*, refund, actor=None, ip_address=None):
    """Send a refund still "requested" (its answer was lost) to Stripe again, and record the answer.
    A refund already answered is returned as it is. Raises as `refund_issue` does. Staff's "send
    again" (`actor`) is audited."""
    refund = Refund.objects.select_related("payment").get(pk=refund.pk)
    if refund.status != Status.REQUESTED:
        return refund
    if actor is not None:
        audit_record(actor=actor, action="refund.send", target=refund, ip_address=ip_address)
    # Stripe may have made it although its answer never came. Stripe's idempotency key would
    # replay it, but only for 24 hours (and localstripe ignores keys): look for it first.
    try:
        made = _made_at_stripe(refund)
    except ProviderUnavailable as unavailable:
        unavailable.refund = refund
        raise
    if made is not None:
        return _record_answer(refund, made)
    return _send(refund)


def refund_record(*, payment, stripe_refund_id, amount_cents, currency, status, portal_refund_id=None):
    """Record a refund (or its new status) and move the lot's hours to match. Idempotent.

    `portal_refund_id` (from the refund's metadata) names a console refund whose Stripe id we may
    not know yet (the webhook came before our own answer): that row is completed, not doubled.
    """
    with transaction.atomic():
        ledger.account_lock(account_id=payment.account_id)
        payment = Payment.objects.select_related("lot").get(pk=payment.pk)
        refund = _refund_for(payment, stripe_refund_id, portal_refund_id)
        if refund is None:
            refund = Refund(payment=payment, amount_cents=amount_cents, currency=currency.upper())
        elif refund.status in Refund.UNDONE:
            return refund  # final: a late "pending" or "succeeded" snapshot must not take hours again
        was_applied = refund.pk is not None and refund.status in Refund.APPLIED
        refund.stripe_refund_id = stripe_refund_id
        refund.status = status
        if status in Refund.APPLIED and not was_applied:
            _take_hours_back(refund, payment)
        elif status in Refund.UNDONE:
            _give_hours_back(refund, payment)
        refund.save()
        if status == Status.SUCCEEDED:
            credit_note_issue(refund=refund)  # once the money has really gone back; issued at most once
    return refund


def _refundable_cents(payment):
    refunded = payment.refunds.exclude(status__in=Refund.UNDONE).values_list("amount_cents", flat=True)
    return payment.amount_cents - sum(refunded)


def _refund_check(payment, *, amount_cents, minutes, reason, limits):
    currency = payment.currency
    if payment.status != Payment.Status.SUCCEEDED:
        raise RefundRefused(f"Only a succeeded payment can be refunded; this one is {payment.get_status_display()}.")
    if not payment.stripe_payment_intent_id:
        raise RefundRefused("This payment has no Stripe PaymentIntent, so it cannot be refunded here.")
    if not reason:
        raise RefundRefused("Give a reason for the refund; it is kept in the audit log.")
    in_flight = payment.refunds.filter(status=Status.REQUESTED).first()
    if in_flight:
        raise RefundRefused(
            f"Another refund of this payment ({money_text(in_flight.amount_cents, in_flight.currency)}) is still "
            "waiting for Stripe's answer. Send it again, or wait for Stripe, before refunding more."
        )
    if limits.refundable_cents <= 0:
        raise RefundRefused("Nothing is left to refund on this payment.")
    if amount_cents < 1:
        raise RefundRefused(f"The refund must be at least {money_text(1, currency)}.")
    if amount_cents > limits.refundable_cents:
        raise RefundRefused(f"At most {money_text(limits.refundable_cents, currency)} can still be refunded.")
    if minutes < 0:
        raise RefundRefused("The hours to take back cannot be negative; take back 0 h for a refund of money only.")
    if minutes > limits.unused_minutes:
        if not limits.unused_minutes:
            raise RefundRefused("No hours of this payment are left unused; take back 0 h (money only).")
        raise RefundRefused(
            f"At most {duration_text(limits.unused_minutes)} of this payment's hours are left unused to take back."
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
        _refund_fail(refund)
        raise RefundRefused(
            "Stripe refused the refund; nothing was refunded and no hours were taken back."
        ) from refused
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


def _made_at_stripe(refund):
    """The Stripe refund made for our `refund` (found by its metadata), or None."""
    wanted = str(refund.pk)
    for listed in stripe_gateway.refunds_for(refund.payment.stripe_payment_intent_id):
        if str((listed.get("metadata") or {}).get("portal_refund_id")) == wanted:
            return stripe_gateway.Refund(
                id=listed["id"],
                status=listed.get("status") or Status.SUCCEEDED,
                amount_cents=int(listed["amount"]),
                currency=listed["currency"].upper(),
                metadata=listed.get("metadata") or {},
            )
    return None


def _refund_fail(refund):
    with transaction.atomic():
        ledger.account_lock(account_id=refund.payment.account_id)
        # Only a refund still waiting: nothing was applied, so no hours move.
        Refund.objects.filter(pk=refund.pk, status=Status.REQUESTED).update(status=Status.FAILED)
    refund.refresh_from_db()


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
    if refund.minutes_requested is not None:
        due = refund.minutes_requested  # chosen by staff (0: money only)
    else:
        due = share_of_minutes(payment.minutes, part_cents=refund.amount_cents, whole_cents=payment.amount_cents)
    available = ledger.lot_unused_minutes(lot=payment.lot) if payment.lot else 0
    taken = min(due, available)
    if taken:
        ledger.lot_reverse(
            lot=payment.lot, minutes=taken, reason=f"Refund {refund.stripe_refund_id}", actor=refund.requested_by
        )
    refund.minutes_reversed = taken
    refund.minutes_short = due - taken


def _give_hours_back(refund, payment):
    if refund.minutes_reversed:
        # A correction of our own reversal, booked as an adjustment with the refund named.
        with contextlib.suppress(LotExpired):  # the hours would have expired by now anyway
            ledger.lot_adjust(
                lot=payment.lot,
                minutes=refund.minutes_reversed,
                reason=f"Refund {refund.stripe_refund_id} {refund.status}",
            )
    refund.minutes_reversed = 0
    refund.minutes_short = 0
