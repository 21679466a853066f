"""Huey tasks of the billing domain: thin wrappers over the services, each safe to run twice."""

import logging
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task

from billing import events, fraud, payments, receipts
from billing.errors import ProviderUnavailable
from billing.ledger import lots_expire_due
from billing.models import Payment, Receipt

logger = logging.getLogger(__name__)

# A payment still processing this long after it started has lost its answer somewhere.
STUCK_AFTER = timedelta(minutes=3)
STALE_RECEIPT = timedelta(minutes=30)
# 3-D Secure left unfinished this long is settled from what Stripe says (usually: not paid).
ABANDONED_AFTER = timedelta(hours=24)


@db_task()
def process_webhook_event(event_id):
    # A failure is retried by retry_due_events (every minute, once next_attempt_at is due).
    events.event_process(event_id=event_id)


@db_task(retries=5, retry_delay=60)
def deliver_receipt(receipt_id):
    """Render a new receipt's PDF and email it. Retried on failure; it is never emailed twice."""
    receipts.receipt_deliver(receipt=Receipt.objects.select_related("account__user").get(pk=receipt_id))


@db_task(retries=3, retry_delay=60)
def resend_receipt(receipt_id, to=None):
    """Staff's "resend": to the student's current address, or to another one."""
    receipts.receipt_email(receipt=Receipt.objects.select_related("account__user").get(pk=receipt_id), to=to)


@db_periodic_task(crontab(minute="*/15"))
@lock_task("billing-render-receipts")
def render_missing_receipts():
    """Receipts whose PDF or email failed past their task's retries: try again, quietly."""
    # Older than half an hour, so a delivery still queued is not done twice.
    now = timezone.now()
    # Not for ever: a receipt still undelivered after two days needs a person (and the logs).
    undelivered = Q(pdf="") | Q(emailed_at__isnull=True)
    stale = Receipt.objects.filter(
        undelivered, issued_at__lte=now - STALE_RECEIPT, issued_at__gte=now - timedelta(days=2)
    )
    for receipt_id in stale.values_list("pk", flat=True)[:100]:
        try:
            deliver_receipt.call_local(receipt_id)
        except Exception:
            logger.exception("Receipt %s is still not delivered; the next run tries again.", receipt_id)


@db_periodic_task(crontab(minute="*"))
@lock_task("billing-retry-events")
def retry_due_events():
    due = events.events_due()
    for event_id in due:
        try:
            events.event_process(event_id=event_id)
        except Exception:
            logger.exception("Could not process Stripe event %s; the next sweep tries again.", event_id)
    return len(due)


@db_periodic_task(crontab(minute="*/10"))
@lock_task("billing-fetch-events")
def fetch_missed_events():
    try:
        return events.events_fetch_missed()
    except ProviderUnavailable:
        return 0  # Stripe is unreachable: the next run looks again


@db_periodic_task(crontab(minute="*/5"))
@lock_task("billing-reconcile-payments")
def reconcile_payments():
    return len(payments_reconcile())


def payments_reconcile():
    """Settle payments whose answer never came (processing); cancel those whose 3-D Secure was left
    unfinished for a day."""
    now = timezone.now()
    stuck = Q(status=Payment.Status.PROCESSING, created_at__lte=now - STUCK_AFTER)
    abandoned = Q(status=Payment.Status.REQUIRES_ACTION, updated_at__lte=now - ABANDONED_AFTER)
    due = Payment.objects.filter(stuck | abandoned).select_related("account").order_by("pk")
    return [payments.payment_abandon(payment=payments.payment_refresh(payment=payment)) for payment in due]


@db_periodic_task(crontab(minute="*/5"))
@lock_task("billing-expire-lots")
def expire_due_lots():
    return len(lots_expire_due())


@db_periodic_task(crontab(minute="*/10"))
@lock_task("billing-fraud-scan")
def scan_for_fraud():
    """The fraud rules over recent payment attempts: what the check after each attempt missed
    (a payment settled later by a webhook or a refresh, a check that failed)."""
    return len(fraud.fraud_scan())
