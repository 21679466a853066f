"""Retention: what the portal stops keeping once its period is over (settings RETENTION_*, in days;
0 keeps that kind for ever), run daily by portal.tasks.apply_retention.

- Sign-ins recorded longer ago than RETENTION_SIGN_IN_DAYS are deleted.
- Alerts read longer ago than RETENTION_READ_ALERT_DAYS are deleted, except an unresolved one whose
  condition still holds (STILL_TRUE): deleted, the next scan would raise it again as news.
- The bodies of Stripe events processed longer ago than RETENTION_EVENT_BODY_DAYS are emptied
  (billing.retention); the rows, with their ids, types and outcomes, stay.
- Stripe events about students erased in the last LATE_EVENTS days that reached us after their
  erasure (the customer.deleted Stripe sends once the customer is gone, carrying their email; a
  webhook Stripe retried) lose their personal fields, as the erasure did to the earlier ones.

Each of the first three is one DELETE or UPDATE whatever the number of rows; a run right after
another finds nothing to do."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from alerts.models import Notification
from billing.models import Account
from billing.privacy import account_events_redact
from billing.retention import webhook_event_bodies_empty
from portal.models import SignIn

# The alerts that alerts.notifications and alerts.staff raise for as long as their condition lasts
# (no time window bounds their rules): while unresolved, they stay whatever their age.
STILL_TRUE = [
    Notification.Kind.LOW_BALANCE,
    Notification.Kind.BALANCE_DEPLETED,
    Notification.Kind.DISPUTE_HOLD,
    Notification.Kind.SUBSCRIPTION_PAST_DUE,
    Notification.Kind.STAFF_WEBHOOK_FAILED,
    Notification.Kind.STAFF_PAYMENT_STUCK,
    Notification.Kind.STAFF_JOB_STALE,
]
# Stripe retries a webhook for up to three days, and fetch_missed_events reads three days back.
LATE_EVENTS = timedelta(days=7)


@dataclass(frozen=True)
class RetentionRun:
    """What one run removed."""

    sign_ins_deleted: int
    read_alerts_deleted: int
    event_bodies_emptied: int
    late_events_redacted: int


def retention_apply(*, now=None):
    """Apply every retention period once. Returns a RetentionRun."""
    now = now or timezone.now()
    return RetentionRun(
        sign_ins_deleted=_sign_ins_delete(now),
        read_alerts_deleted=_read_alerts_delete(now),
        event_bodies_emptied=_event_bodies_empty(now),
        late_events_redacted=_late_events_redact(now),
    )


def _cutoff(now, days):
    """The moment before which a kind with a period of `days` is forgotten, or None to keep it."""
    return now - timedelta(days=days) if days > 0 else None


def _sign_ins_delete(now):
    if (before := _cutoff(now, settings.RETENTION_SIGN_IN_DAYS)) is None:
        return 0
    return SignIn.objects.filter(at__lt=before).delete()[0]


def _read_alerts_delete(now):
    if (before := _cutoff(now, settings.RETENTION_READ_ALERT_DAYS)) is None:
        return 0
    read = Notification.objects.filter(read_at__lt=before).exclude(kind__in=STILL_TRUE, resolved_at__isnull=True)
    return read.delete()[0]


def _event_bodies_empty(now):
    if (before := _cutoff(now, settings.RETENTION_EVENT_BODY_DAYS)) is None:
        return 0
    return webhook_event_bodies_empty(processed_before=before)


def _late_events_redact(now):
    erased = list(Account.objects.filter(user__erased_at__gte=now - LATE_EVENTS))
    return account_events_redact(accounts=erased) if erased else 0
