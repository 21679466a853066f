"""Huey tasks of the billing domain: thin wrappers over the services, each safe to run twice.

They sit on top of the services; no service imports them. A service that needs work done after
its transaction commits names a job in billing.background, and the bottom of this module connects
each job to its task (BillingConfig.ready imports this module in every process).
"""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task

from billing import background, events, payments, receipts, refunds, subscriptions, topups
from billing.errors import ProviderUnavailable
from billing.fraud.rules import fraud_scan
from billing.ledger import lots_expire_due
from billing.models import Receipt
from billing.selectors import accounts_out_of_balance
from billing.statements import statements_email_due


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


@db_task()
def cancel_blocked_payments(account_id):
    # A cancel Stripe does not answer is retried by reconcile_payments (every 5 minutes).
    payments.payments_abandon_for_blocked(account_id=account_id)


@db_task()
def check_auto_top_ups(account_ids):
    """After a balance fell or a top-up's settings changed. A failure is left to scan_auto_top_ups."""
    return len(topups.auto_top_ups_check(account_ids=account_ids))


@db_periodic_task(crontab(minute="*/15"))
@lock_task("billing-auto-top-ups")
def scan_auto_top_ups():
    """The safety net of automatic top-up: balances the checks missed, payments settled later, caps
    whose month has turned."""
    return len(topups.auto_top_ups_scan())


@db_periodic_task(crontab(minute="*/15"))
@lock_task("billing-render-receipts")
def render_missing_receipts():
    """Receipts whose PDF or email failed past their task's retries: try again, quietly."""
    return receipts.receipts_deliver_undelivered()


@db_periodic_task(crontab(minute="*"))
@lock_task("billing-retry-events")
def retry_due_events():
    return events.events_process_due()


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
    return len(payments.payments_reconcile())


@db_periodic_task(crontab(minute="*/5"))
@lock_task("billing-reconcile-refunds")
def reconcile_refunds():
    """Console refunds left "requested" because their request to Stripe was lost."""
    return len(refunds.refunds_reconcile())


@db_periodic_task(crontab(minute="*/10"))
@lock_task("billing-reconcile-subscriptions")
def reconcile_subscriptions():
    """Subscriptions and invoices whose events were missed: each paid invoice gets its lot once."""
    return subscriptions.subscriptions_reconcile()


@db_periodic_task(crontab(hour="3", minute="30"))
@lock_task("billing-check-ledger")
def check_ledger():
    """`manage.py ledger_check`, daily: how many accounts' cached balance differs from their ledger or
    their lots. The console's System page shows it as the reconciliation's drift (0: all balance)."""
    return accounts_out_of_balance().count()


@db_periodic_task(crontab(minute="*/5"))
@lock_task("billing-expire-lots")
def expire_due_lots():
    return len(lots_expire_due())


@db_periodic_task(crontab(minute="*/10"))
@lock_task("billing-fraud-scan")
def scan_for_fraud():
    """The fraud rules over recent payment attempts: what the check after each attempt missed
    (a payment settled later by a webhook or a refresh, a check that failed)."""
    return len(fraud_scan())


@db_periodic_task(crontab(day="1", hour="6-23", minute="0"))
@lock_task("billing-email-statements")
def email_monthly_statements():
    """Last month's statement to every student who asked for it: hourly on the first of the month,
    so a run that fails (or finds the mail server down) is followed by another; each student gets it
    once (billing.statements.statements_email_due claims before it sends)."""
    return statements_email_due()


background.process_event.connect(process_webhook_event)
background.deliver_receipt.connect(deliver_receipt)
background.resend_receipt.connect(resend_receipt)
background.cancel_blocked_payments.connect(cancel_blocked_payments)
background.top_up_check.connect(check_auto_top_ups)
