"""Stripe's dispute events applied to hours: while a dispute's funds are withdrawn the lot's unused
hours are held; a won dispute or reinstated funds releases them, a lost one removes them for good.

Stripe delivers dispute events in any order, so each event is applied by comparing the state the
dispute should be in (from the dispute object and the event type) with what we already did.
"""

import contextlib
from datetime import UTC, datetime

from django.db import transaction

from billing import ledger
from billing.errors import LotExpired
from billing.models import Dispute, Payment, share_of_minutes

Status = Dispute.Status


def dispute_record(*, payment, dispute_object, event_type):
    """Create or update the Dispute for a Stripe dispute object and hold, release or remove hours."""
    with transaction.atomic():
        ledger.account_lock(account_id=payment.account_id)
        payment = Payment.objects.select_related("lot").get(pk=payment.pk)
        dispute, _ = Dispute.objects.select_for_update().get_or_create(
            stripe_dispute_id=dispute_object["id"],
            defaults={
                "payment": payment,
                "amount_cents": dispute_object["amount"],
                "currency": dispute_object["currency"].upper(),
                "status": dispute_object["status"],
            },
        )
        if dispute.closed:
            return dispute  # a closed dispute is final: late events change nothing
        dispute.amount_cents = dispute_object["amount"]
        dispute.status = dispute_object["status"]
        dispute.reason = dispute_object.get("reason") or ""
        dispute.evidence_due_by = _evidence_due_by(dispute_object)
        reinstated = event_type == "charge.dispute.funds_reinstated" or dispute.status == Status.WON
        if not reinstated and (event_type == "charge.dispute.funds_withdrawn" or _funds_withdrawn(dispute_object)):
            dispute.funds_withdrawn = True
        if reinstated:
            _release(dispute, payment)
            dispute.funds_withdrawn = False  # a later update must not hold the hours again
            dispute.minutes_short = 0
        elif dispute.status == Status.LOST:
            _hold(dispute, payment)  # whatever is not held yet goes now; held hours stay gone
        elif dispute.funds_withdrawn:
            _hold(dispute, payment)
        dispute.closed = dispute.status in Dispute.CLOSED
        dispute.save()
    return dispute


def _hold(dispute, payment):
    if dispute.minutes_held or dispute.minutes_short or payment.lot is None:
        return
    due = share_of_minutes(payment.minutes, part_cents=dispute.amount_cents, whole_cents=payment.amount_cents)
    held = min(due, ledger.lot_unused_minutes(lot=payment.lot))
    if held:
        ledger.lot_hold(lot=payment.lot, minutes=held, reason=f"Dispute {dispute.stripe_dispute_id}")
    dispute.minutes_held = held
    dispute.minutes_short = due - held


def _release(dispute, payment):
    if not dispute.minutes_held:
        return
    with contextlib.suppress(LotExpired):  # expired while held: the hours would have expired anyway
        ledger.lot_release(lot=payment.lot, minutes=dispute.minutes_held, reason=f"Dispute {dispute.stripe_dispute_id}")
    dispute.minutes_held = 0


def _funds_withdrawn(dispute_object):
    transactions = dispute_object.get("balance_transactions") or []
    return sum(entry.get("amount", 0) for entry in transactions if isinstance(entry, dict)) < 0


def _evidence_due_by(dispute_object):
    due = (dispute_object.get("evidence_details") or {}).get("due_by")
    return datetime.fromtimestamp(due, tz=UTC) if due else None
