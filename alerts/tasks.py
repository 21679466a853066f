"""Huey jobs of the alerts: the scans and the emails, each safe to run twice or at once."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task

from alerts import notifications


@db_periodic_task(crontab(minute="*/5"))
@lock_task("alerts-scan")
def scan_alerts():
    created = notifications.alerts_scan()
    if created:
        send_alert_emails()
    return created


@db_periodic_task(crontab(minute="*"))
@lock_task("alerts-email")
def send_alert_emails_periodically():
    return notifications.emails_send_due()


@db_task(retries=3, retry_delay=30)
def send_alert_emails():
    return notifications.emails_send_due()
