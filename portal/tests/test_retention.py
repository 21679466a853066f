"""Retention: the daily job deletes sign-ins and read alerts older than their periods and empties the
bodies of Stripe events processed longer ago than theirs, keeping each event's ids, type, outcome and
times; never a failed or waiting event, never an alert whose condition still holds. One statement
per kind whatever the number of rows, idempotent, with counts; the console copes with an emptied
body."""

from dataclasses import replace
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.models import Notification
from billing import samples
from billing.models import WebhookEvent
from billing.tests.builders import make_student
from portal.models import SignIn
from portal.retention import RetentionRun, retention_apply
from portal.tasks import apply_retention

pytestmark = pytest.mark.django_db

NOTHING = RetentionRun(sign_ins_deleted=0, read_alerts_deleted=0, event_bodies_emptied=0, late_events_redacted=0)
_keys = iter(range(1, 10**6))


@pytest.fixture
def now():
    return timezone.now()


def sign_in(user, *, days_ago):
    with time_machine.travel(timezone.now() - timedelta(days=days_ago)):
        return SignIn.objects.create(user=user, ip_address="203.0.113.7", user_agent="Firefox")


def alert(user, *, read_days_ago=None, kind=Notification.Kind.PAYMENT_SUCCEEDED, resolved=False):
    read_at = timezone.now() - timedelta(days=read_days_ago) if read_days_ago is not None else None
    return Notification.objects.create(
        recipient=user,
        kind=kind,
        dedupe_key=f"retention:{next(_keys)}",
        title="Payment received",
        read_at=read_at,
        resolved_at=timezone.now() if resolved else None,
    )


def event(*, status=WebhookEvent.Status.PROCESSED, processed_days_ago=None):
    body = samples.event("customer.updated", {"id": "cus_1", "object": "customer", "email": "ana@example.com"})
    processed_at = timezone.now() - timedelta(days=processed_days_ago) if processed_days_ago is not None else None
    return WebhookEvent.objects.create(
        stripe_event_id=body["id"], type=body["type"], payload=body, status=status, processed_at=processed_at
    )


def test_it_deletes_sign_ins_older_than_their_period_and_keeps_the_rest(student):
    old, recent = sign_in(student.user, days_ago=366), sign_in(student.user, days_ago=364)

    run = retention_apply()

    assert run.sign_ins_deleted == 1
    assert list(SignIn.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not SignIn.objects.filter(pk=old.pk).exists()


def test_it_deletes_alerts_read_longer_ago_than_their_period(student):
    old = alert(student.user, read_days_ago=181)
    kept = [alert(student.user, read_days_ago=179), alert(student.user)]  # read recently, and unread

    run = retention_apply()

    assert run.read_alerts_deleted == 1
    assert not Notification.objects.filter(pk=old.pk).exists()
    assert set(Notification.objects.values_list("pk", flat=True)) == {kept[0].pk, kept[1].pk}


def test_an_alert_whose_condition_still_holds_is_kept_until_it_is_resolved(student):
    still_low = alert(student.user, read_days_ago=400, kind=Notification.Kind.LOW_BALANCE)
    over = alert(student.user, read_days_ago=400, kind=Notification.Kind.LOW_BALANCE, resolved=True)

    retention_apply()

    assert Notification.objects.filter(pk=still_low.pk).exists()
    assert not Notification.objects.filter(pk=over.pk).exists()


def test_it_empties_the_bodies_of_events_processed_long_ago_and_keeps_their_row():
    old = event(processed_days_ago=91)
    ignored = event(status=WebhookEvent.Status.IGNORED, processed_days_ago=91)
    recent = event(processed_days_ago=89)

    run = retention_apply()

    assert run.event_bodies_emptied == 2
    for emptied in (old, ignored):
        row = WebhookEvent.objects.get(pk=emptied.pk)
        assert row.payload == {}
        assert (row.stripe_event_id, row.type, row.status, row.processed_at) == (
            emptied.stripe_event_id,
            emptied.type,
            emptied.status,
            emptied.processed_at,
        )
    assert WebhookEvent.objects.get(pk=recent.pk).payload == recent.payload


@pytest.mark.parametrize("status", sorted(set(WebhookEvent.Status) - WebhookEvent.FINISHED))
def test_an_event_still_to_be_applied_keeps_its_body_whatever_its_age(status):
    waiting = event(status=status)
    WebhookEvent.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - timedelta(days=400))

    retention_apply()

    assert WebhookEvent.objects.get(pk=waiting.pk).payload == waiting.payload


def test_a_second_run_changes_nothing(student):
    sign_in(student.user, days_ago=400)
    alert(student.user, read_days_ago=400)
    event(processed_days_ago=400)
    retention_apply()

    assert retention_apply() == NOTHING


def test_the_periods_come_from_the_settings_and_0_keeps_for_ever(student, settings):
    settings.RETENTION_SIGN_IN_DAYS = 0
    settings.RETENTION_READ_ALERT_DAYS = 10
    settings.RETENTION_EVENT_BODY_DAYS = 0
    sign_in(student.user, days_ago=4000)
    alert(student.user, read_days_ago=11)
    event(processed_days_ago=4000)

    assert retention_apply() == replace(NOTHING, read_alerts_deleted=1)
    assert SignIn.objects.exists() and WebhookEvent.objects.get().payload != {}


def test_the_defaults_are_documented_ones(settings):
    periods = (settings.RETENTION_SIGN_IN_DAYS, settings.RETENTION_READ_ALERT_DAYS, settings.RETENTION_EVENT_BODY_DAYS)
    assert periods == (365, 180, 90)


def test_it_costs_the_same_queries_for_many_rows_as_for_few():
    def queries_for(count):
        students = [make_student() for _ in range(count)]
        for number, account in enumerate(students):
            sign_in(account.user, days_ago=400)
            alert(account.user, read_days_ago=400)
            body = samples.event("customer.updated", {"id": f"cus_{number}", "object": "customer"})
            WebhookEvent.objects.create(
                stripe_event_id=body["id"],
                type=body["type"],
                payload=body,
                status=WebhookEvent.Status.PROCESSED,
                processed_at=timezone.now() - timedelta(days=400),
            )
        with CaptureQueriesContext(connection) as counted:
            run = retention_apply()
        assert run.sign_ins_deleted == run.read_alerts_deleted == run.event_bodies_emptied == count
        return len(counted)

    assert queries_for(2) == queries_for(30)


def test_the_daily_job_runs_it_and_says_how_much_it_removed(student):
    sign_in(student.user, days_ago=400)
    event(processed_days_ago=400)

    assert apply_retention.call_local() == 2
    daily = apply_retention.s()
    night = timezone.now().replace(hour=4, minute=0, second=0, microsecond=0, tzinfo=None)  # Huey reads UTC
    assert daily.validate_datetime(night) and not daily.validate_datetime(night + timedelta(minutes=1))


# The console with an emptied body


def test_the_event_page_says_its_body_was_removed(support_client):
    emptied = event(processed_days_ago=400)
    retention_apply()

    response = support_client.get(reverse("console:webhook", args=[emptied.pk]))

    assert response.status_code == 200
    text = response.content.decode()
    assert "The body of this event was removed" in text and emptied.stripe_event_id in text
