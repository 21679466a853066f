"""The console's System page: Support and Finance read it (students get 404, the signed-out the sign-in
page); it shows every periodic job with its schedule, last start, duration, outcome and next run,
marks the late ones, and gives the queue's depth, the events and payments not settled and what the
last ledger check and reconciliations found, in the same few queries however long the history."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.jobs import periodic_jobs
from billing.models import JobRun, Payment, WebhookEvent
from billing.tests.builders import job_run, jobs_all_ran, make_student, payment_row

pytestmark = pytest.mark.django_db

URL = reverse("console:system")
Outcome = JobRun.Outcome


def page_text(response):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def job_row(response, function):
    """The text of the jobs table's row for a job (by its function's name)."""
    rows = re.findall(r"<tr>(.*?)</tr>", response.content.decode(), flags=re.S)
    row = next(row for row in rows if f"<code>{function}</code>" in row)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()


def unsettled(count):
    for number in range(count):
        account = make_student()
        payment_row(account, status=Payment.Status.PROCESSING)
        for status in (WebhookEvent.Status.FAILED, WebhookEvent.Status.WAITING):
            WebhookEvent.objects.create(
                stripe_event_id=f"evt_system_{account.pk}_{number}_{status}",
                type="charge.refunded",
                payload={},
                status=status,
            )


class TestAccess:
    def test_support_reads_it(self, support_client):
        response = support_client.get(URL)

        assert response.status_code == 200
        assert "<h1>System</h1>" in response.content.decode()

    def test_finance_reads_it(self, finance_client):
        assert finance_client.get(URL).status_code == 200

    def test_students_are_told_it_does_not_exist(self, student_client):
        assert student_client.get(URL).status_code == 404

    def test_the_signed_out_are_sent_to_sign_in(self, client):
        response = client.get(URL)

        assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))

    def test_it_changes_nothing_so_takes_no_post(self, support_client):
        assert support_client.post(URL).status_code == 405

    def test_the_console_nav_links_it_marked_as_the_current_page(self, support_client):
        html = support_client.get(URL).content.decode()

        assert f'<a href="{URL}" aria-current="page">System</a>' in html


class TestJobs:
    def test_every_periodic_job_of_both_apps_is_listed_with_its_schedule(self, support_client):
        response = support_client.get(URL)

        text = page_text(response)
        for job in periodic_jobs():
            assert f"<code>{job.function}</code>" in response.content.decode()
        assert "Every 5 minutes */5 * * * *" in job_row(response, "scan_alerts")
        assert "30 3 * * *" in job_row(response, "check_ledger")
        assert "Never" in job_row(response, "check_ledger") and "Late" not in text.split("Periodic jobs")[1]

    def test_a_run_shows_its_start_duration_outcome_and_result(self, support_client):
        started = timezone.now() - timedelta(minutes=1)
        job_run("billing.tasks.reconcile_payments", started_at=started, result=3, duration_ms=1240)

        row = job_row(support_client.get(URL), "reconcile_payments")

        assert "1.2 s" in row and "Succeeded" in row and "result: 3" in row

    def test_a_failed_run_shows_its_error(self, support_client):
        job_run(
            "billing.tasks.fetch_missed_events",
            started_at=timezone.now(),
            outcome=Outcome.FAILED,
            error="ProviderUnavailable: Stripe did not answer",
        )

        row = job_row(support_client.get(URL), "fetch_missed_events")

        assert "Failed" in row and "ProviderUnavailable: Stripe did not answer" in row

    def test_a_job_that_missed_three_periods_is_marked_late(self, support_client):
        now = timezone.now()
        for run in jobs_all_ran(now):
            if run.task == "billing.tasks.reconcile_refunds":
                JobRun.objects.filter(pk=run.pk).update(started_at=now - timedelta(minutes=16))

        response = support_client.get(URL)

        assert "Late" in job_row(response, "reconcile_refunds")
        assert "Late" not in job_row(response, "reconcile_payments")
        assert "Late jobs 1 of" in page_text(response)


class TestFigures:
    def test_queue_events_payments_drift_and_reconciliations_are_shown(self, support_client):
        unsettled(2)
        now = timezone.now()
        job_run("billing.tasks.check_ledger", started_at=now - timedelta(days=2), result=0)
        job_run("billing.tasks.check_ledger", started_at=now - timedelta(hours=3), result=4)
        job_run("billing.tasks.check_ledger", started_at=now, outcome=Outcome.FAILED, error="OperationalError")
        job_run("billing.tasks.reconcile_subscriptions", started_at=now, result=7)

        text = page_text(support_client.get(URL))

        assert "Jobs waiting in the queue 0 0 scheduled for later" in text
        assert "Webhook events failed 2" in text and "Webhook events waiting 2" in text
        assert "Payments in flight 2" in text
        assert "Ledger drift 4 accounts out of balance" in text  # the last check that ran to its end
        assert "Subscriptions checked against Stripe 7" in text
        assert "Payments settled with Stripe — Not run yet" in text

    def test_before_any_ledger_check_the_drift_is_not_made_up(self, support_client):
        assert "Ledger drift — the ledger has not been checked yet" in page_text(support_client.get(URL))


def test_the_page_costs_the_same_queries_for_a_short_or_long_history(support_client):
    def page_queries():
        with CaptureQueriesContext(connection) as queries:
            assert support_client.get(URL).status_code == 200
        return len(queries)

    support_client.get(URL)  # the session's first request loads what later ones find cached
    unsettled(1)
    jobs_all_ran(timezone.now() - timedelta(minutes=1))
    few = page_queries()

    unsettled(10)
    for minutes in range(2, 200):
        jobs_all_ran(timezone.now() - timedelta(minutes=minutes))
    many = page_queries()

    assert few == many <= 9  # the session and staff checks; the runs, the results, the events, the payments
