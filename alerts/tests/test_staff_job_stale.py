"""The staff alert for a background job that has not started for three of its periods (alerts.staff,
billing.jobs): Finance hear of it once each, it resolves when the job starts again, and a new lapse
alerts again. Time stands still in each test, at a moment after this process started."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import Notification
from alerts.staff import staff_alerts_scan
from billing.jobs import periodic_jobs
from billing.models import JobRun
from billing.tests.builders import job_run, make_console_user

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
NOW = datetime(2027, 3, 10, 10, 12, 30, tzinfo=UTC)  # reconcile_refunds (every 5 min) was due 10:10, 10:05, 10:00
JOB = "billing.tasks.reconcile_refunds"
FINANCE = ["fiona@example.com", "frank@example.com"]


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def team(db):
    make_console_user("sol@example.com", role="Support")
    return [make_console_user(email) for email in FINANCE]


def others_ran_just_now(*, except_for=JOB):
    for job in periodic_jobs():
        if job.name != except_for:
            job_run(job.name, started_at=NOW - timedelta(seconds=20))


def stale_alerts(**filters):
    return Notification.objects.filter(kind=Kind.STAFF_JOB_STALE, **filters)


def test_a_job_that_missed_three_periods_alerts_finance_once_each(team):
    others_ran_just_now()
    job_run(JOB, started_at=datetime(2027, 3, 10, 9, 59, 50, tzinfo=UTC))

    assert staff_alerts_scan() == 2
    assert staff_alerts_scan() == 0

    assert sorted(stale_alerts().values_list("recipient__email", flat=True)) == FINANCE
    alert = stale_alerts().first()
    assert alert.title == "Background job reconcile_refunds is late"
    assert alert.body.startswith(
        "The background job reconcile_refunds (crontab */5 * * * *, UTC) has not started since 10 Mar 2027, 10:59:"
    )  # 09:59 UTC read in Berlin time
    assert "it has missed 3 of its runs." in alert.body
    assert alert.link == "/console/system/"


def test_two_missed_periods_are_not_yet_news(team):
    others_ran_just_now()
    job_run(JOB, started_at=datetime(2027, 3, 10, 10, 0, 5, tzinfo=UTC))  # then missed 10:05 and 10:10

    assert staff_alerts_scan() == 0


def test_the_alert_resolves_once_the_job_starts_again_and_a_new_lapse_alerts_anew(team):
    others_ran_just_now()
    job_run(JOB, started_at=NOW - timedelta(minutes=20))
    staff_alerts_scan()

    job_run(JOB, started_at=NOW - timedelta(seconds=5))
    staff_alerts_scan()

    assert stale_alerts().count() == 2 and not stale_alerts(resolved_at__isnull=True).exists()

    with time_machine.travel(NOW + timedelta(minutes=20), tick=False):
        for job in periodic_jobs():
            if job.name != JOB:
                job_run(job.name, started_at=NOW + timedelta(minutes=20))
        assert staff_alerts_scan() == 2

    assert stale_alerts(resolved_at__isnull=True).count() == 2


def test_runs_its_lock_refused_are_no_start(team):
    others_ran_just_now()
    job_run(JOB, started_at=NOW - timedelta(minutes=40), outcome=JobRun.Outcome.RUNNING)  # stuck, holding the lock
    job_run(JOB, started_at=NOW - timedelta(minutes=5), outcome=JobRun.Outcome.SKIPPED_LOCKED)
    assert staff_alerts_scan() == 2

    job_run(JOB, started_at=NOW - timedelta(seconds=2), outcome=JobRun.Outcome.SKIPPED_LOCKED)
    assert staff_alerts_scan() == 0

    assert stale_alerts(resolved_at__isnull=True).count() == 2  # one lapse, still open


def test_a_job_that_never_started_counts_from_the_oldest_run_recorded(team):
    others_ran_just_now()
    job_run("billing.tasks.reconcile_payments", started_at=NOW - timedelta(minutes=11))

    assert staff_alerts_scan() == 0  # since 10:01:30, due only at 10:05 and 10:10

    job_run("billing.tasks.reconcile_payments", started_at=NOW - timedelta(minutes=16))

    assert staff_alerts_scan() == 2
    assert "has never started, though 3 of its runs are due by now." in stale_alerts().first().body


def test_support_is_not_alerted(team):
    others_ran_just_now()
    job_run(JOB, started_at=NOW - timedelta(hours=1))

    staff_alerts_scan()

    assert not stale_alerts(recipient__email="sol@example.com").exists()


def test_the_rule_costs_the_same_queries_for_one_late_job_or_many(team):
    def scan_queries():
        with CaptureQueriesContext(connection) as queries:
            staff_alerts_scan()
        return sum(not query["sql"].startswith("INSERT") for query in queries)

    others_ran_just_now()
    job_run(JOB, started_at=NOW - timedelta(hours=1))
    one = scan_queries()

    JobRun.objects.all().delete()
    for job in periodic_jobs():
        job_run(job.name, started_at=NOW - timedelta(days=40))
    for number in range(3):
        make_console_user(f"finance{number}@example.com")
    many = scan_queries()

    assert stale_alerts(resolved_at__isnull=True).count() == len(periodic_jobs()) * 5
    assert one == many <= 19  # the other rules' 16, then the jobs' runs, their resolve, the keys' look-up
