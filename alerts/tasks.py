"""Huey jobs of the alerts: the scans and the emails, each safe to run twice or at once."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task, signal
from huey.signals import SIGNAL_COMPLETE

from alerts import notifications, staff
from billing import background
from billing.tasks import check_auto_top_ups, process_webhook_event, scan_auto_top_ups


@db_periodic_task(crontab(minute="*/5"))
@lock_task("alerts-scan")
def scan_alerts():
    created = notifications.alerts_scan() + staff.staff_alerts_scan()
    if created:
        send_alert_emails()
    return created


@db_task()
def scan_staff_alerts():
    created = staff.staff_alerts_scan()
    if created:
        send_alert_emails()
    return created


@signal(SIGNAL_COMPLETE)
def scan_staff_alerts_after_webhook_event(signal_name, task, *args):
    """Staff hear of a new dispute or fraud warning as soon as its event is applied, not at the next
    scan. A Huey signal, so that billing's webhook task needs to know nothing of the alerts."""
    if isinstance(task, process_webhook_event.task_class) and staff.event_may_alert_staff(event_id=task.args[0]):
        scan_staff_alerts()


@signal(SIGNAL_COMPLETE)
def alert_auto_top_ups(signal_name, task, *args):
    """The student hears of an automatic top-up (bought, declined, waiting for the bank, paused) as soon
    as its check has run, not at the next scan."""
    if isinstance(task, check_auto_top_ups.task_class):
        created = notifications.auto_top_up_notify(account_ids=task.args[0])
    elif isinstance(task, scan_auto_top_ups.task_class):
        created = notifications.auto_top_up_notify()
    else:
        return
    if created:
        send_alert_emails()


@db_periodic_task(crontab(minute="*"))
@lock_task("alerts-email")
def send_alert_emails_periodically():
    return notifications.emails_send_due()


@db_task(retries=3, retry_delay=30)
def send_alert_emails():
    return notifications.emails_send_due()


@db_task(retries=3, retry_delay=30)
def refresh_lot_alerts(lot_ids):
    # A failure is harmless: the next scan resolves what this would have.
    return notifications.lot_alerts_refresh(lot_ids=lot_ids)


background.lot_alerts_refresh.connect(refresh_lot_alerts)
