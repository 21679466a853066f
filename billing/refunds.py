"""Refunds: money back on a payment, and the lot's hours taken back in proportion, once per refund.

A refund reaches us from the Stripe webhook (made in the Dashboard or by the console); whichever
way, it is recorded by its Stripe id, so a repeated event never reverses hours twice.
"""

import contextlib

from django.db import transaction

from billing import ledger
from billing.errors import LotExpired
from billing.models import Account, Payment, Refund, share_of_minutes
from billing.receipts import credit_note_issue

APPLIED_STATUSES = {"succeeded", "pending"}
UNDONE_STATUSES = {"failed", "canceled"}


def refund_record(*, payment, stripe_refund_id, amount_cents, currency, status):
    """Record a refund (or its new status) and move the lot's hours to match. Idempotent."""
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=payment.account_id)
        payment = Payment.objects.select_related("lot").get(pk=payment.pk)
        refund, _ = Refund.objects.select_for_update().get_or_create(
            stripe_refund_id=stripe_refund_id,
            defaults={"payment": payment, "amount_cents": amount_cents, "currency": currency.upper(), "status": status},
        )
        if refund.status in UNDONE_STATUSES:
            return refund  # final: a late "pending" or "succeeded" snapshot must not take hours again
        refund.status = status
        newly_applied = status in APPLIED_STATUSES and not refund.minutes_reversed and not refund.minutes_short
        if newly_applied:
            _take_hours_back(refund, payment)
        elif status in UNDONE_STATUSES:
            _give_hours_back(refund, payment)
        refund.save()
        if status == "succeeded":
            credit_note_issue(refund=refund)  # once the money has really gone back; issued at most once
    return refund


def _take_hours_back(refund, payment):
    due = share_of_minutes(payment.minutes, part_cents=refund.amount_cents, whole_cents=payment.amount_cents)
    available = ledger.lot_unused_minutes(lot=payment.lot) if payment.lot else 0
    taken = min(due, available)
    if taken:
        ledger.lot_reverse(lot=payment.lot, minutes=taken, reason=f"Refund {refund.stripe_refund_id}")
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
