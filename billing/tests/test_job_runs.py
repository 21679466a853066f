"""Every run of every periodic Huey task is recorded (portal/job_runs.py into billing.models.JobRun):
its start, duration, outcome, result and error; only periodic tasks; a job's old runs pruned as it
runs again. What a crontab means in time (billing.schedules), which job is late (billing.jobs), and
the daily ledger check whose result is the reconciliation's drift."""

from datetime import UTC, datetime, timedelta

import pytest
from huey import crontab
from huey.contrib.djhuey import HUEY, db_periodic_task
from huey.exceptions import TaskLockedException

from billing import tasks
from billing.jobs import job_is_late, jobs_status, periodic_jobs
from billing.models import Account, JobRun
from billing.schedules import Schedule
from billing.tests.builders import credit, job_run, make_student

pytestmark = pytest.mark.django_db

Outcome = JobRun.Outcome
NOW = datetime(2026, 12, 7, 10, 12, 30, tzinfo=UTC)


def schedule_of(name):
    return next(job.schedule for job in periodic_jobs() if job.name == name)


@pytest.fixture
def failing_job():
    """A periodic task of the test's own, registered on the project's Huey for the test only."""

    @db_periodic_task(crontab(minute="*"))
    def sync_with_the_bank():
        raise ConnectionError("The bank refused key sk_live_4eC39HqLyjWDarjtT1zdp7dc at 10.0.0.7")

    yield sync_with_the_bank
    sync_with_the_bank.unregister()


@pytest.fixture
def wordy_job():
    @db_periodic_task(crontab(minute="*"))
    def say_done():
        return "done"

    yield say_done
    say_done.unregister()


@pytest.fixture
def hand_scheduled_job():
    """A periodic task whose test is a function of its own, not a crontab (Huey allows any)."""

    @db_periodic_task(lambda moment: moment.minute == 7)
    def at_seven_past():
        return 0

    yield at_seven_past
    at_seven_past.unregister()


class TestRecording:
    def test_a_run_is_recorded_with_its_duration_outcome_and_numeric_result(self):
        account = make_student()
        credit(account, 600)
        Account.objects.filter(pk=account.pk).update(balance_minutes=540)  # as a bug would leave it

        tasks.check_ledger()

        run = JobRun.objects.get()
        assert run.task == "billing.tasks.check_ledger"
        assert run.outcome == Outcome.SUCCEEDED and run.result == 1 and run.error == ""
        assert run.started_at <= run.finished_at and run.duration_ms >= 0

    def test_every_run_is_a_row_of_its_own(self):
        tasks.expire_due_lots()
        tasks.expire_due_lots()

        assert (
            list(JobRun.objects.values_list("task", "outcome", "result"))
            == [("billing.tasks.expire_due_lots", Outcome.SUCCEEDED, 0)] * 2
        )

    def test_the_periodic_tasks_of_the_alerts_are_recorded_too(self):
        from alerts import tasks as alert_tasks

        alert_tasks.scan_alerts()

        assert JobRun.objects.get().task == "alerts.tasks.scan_alerts"

    def test_a_failed_run_keeps_its_error_without_the_secret_in_it(self, failing_job):
        failing_job()

        run = JobRun.objects.get()
        assert run.task == "billing.tests.test_job_runs.sync_with_the_bank"
        assert run.outcome == Outcome.FAILED and run.result is None and run.finished_at is not None
        assert run.error == "ConnectionError: The bank refused key [redacted] at 10.0.0.7"

    def test_a_run_its_lock_refuses_is_recorded_as_skipped(self):
        with HUEY.lock_task("billing-check-ledger"):
            tasks.check_ledger()

        run = JobRun.objects.get()
        assert run.outcome == Outcome.SKIPPED_LOCKED and run.result is None
        assert run.error.startswith(TaskLockedException.__name__)

    def test_a_result_that_is_no_number_is_not_kept(self, wordy_job):
        wordy_job()

        assert JobRun.objects.get().result is None

    def test_tasks_that_are_not_periodic_are_not_recorded(self):
        tasks.check_auto_top_ups([])

        assert not JobRun.objects.exists()


class TestPruning:
    def test_a_jobs_runs_older_than_the_retention_go_when_it_runs_again_and_others_stay(self, settings):
        settings.JOB_RUNS_KEEP_DAYS = 30
        old = job_run("billing.tasks.expire_due_lots", started_at=NOW - timedelta(days=31))
        recent = job_run("billing.tasks.expire_due_lots", started_at=NOW - timedelta(days=29))
        other = job_run("billing.tasks.reconcile_payments", started_at=NOW - timedelta(days=31))

        tasks.expire_due_lots()

        kept = set(JobRun.objects.values_list("pk", flat=True))
        assert old.pk not in kept and {recent.pk, other.pk} <= kept
        assert JobRun.objects.filter(task="billing.tasks.expire_due_lots").count() == 2

    def test_the_latest_run_stays_however_old_the_job_is(self, settings):
        settings.JOB_RUNS_KEEP_DAYS = 0

        tasks.expire_due_lots()
        tasks.expire_due_lots()

        assert JobRun.objects.count() == 1


class TestSchedules:
    def test_every_periodic_job_of_both_apps_is_found_with_its_crontab(self):
        crontabs = {job.name: job.schedule.crontab for job in periodic_jobs()}

        assert crontabs["billing.tasks.retry_due_events"] == "* * * * *"
        assert crontabs["billing.tasks.reconcile_payments"] == "*/5 * * * *"
        assert crontabs["billing.tasks.check_ledger"] == "30 3 * * *"
        assert crontabs["billing.tasks.email_monthly_statements"] == "0 6-23 1 * *"
        assert crontabs["alerts.tasks.scan_alerts"] == "*/5 * * * *"
        assert all(crontabs.values())

    def test_a_crontab_is_walked_to_the_moments_it_was_due_and_will_be(self):
        every_5 = schedule_of("billing.tasks.reconcile_payments")

        assert every_5.moments_before(NOW, 3) == [
            datetime(2026, 12, 7, 10, 10, tzinfo=UTC),
            datetime(2026, 12, 7, 10, 5, tzinfo=UTC),
            datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
        ]
        assert every_5.next_after(NOW) == datetime(2026, 12, 7, 10, 15, tzinfo=UTC)
        assert every_5.every_minutes == 5

    def test_a_monthly_job_is_due_on_its_days_only(self):
        monthly = schedule_of("billing.tasks.email_monthly_statements")

        assert monthly.moments_before(NOW, 2) == [
            datetime(2026, 12, 1, 23, 0, tzinfo=UTC),
            datetime(2026, 12, 1, 22, 0, tzinfo=UTC),
        ]
        assert monthly.next_after(NOW) == datetime(2027, 1, 1, 6, 0, tzinfo=UTC)
        assert monthly.every_minutes is None

    def test_days_of_the_week_count_from_sunday_as_huey_does(self):
        mondays = Schedule(months=range(1, 13), days=range(1, 32), weekdays=[1], hours=[9], minutes=[0])

        assert mondays.next_after(NOW) == datetime(2026, 12, 14, 9, 0, tzinfo=UTC)  # NOW is a Monday, past 9:00
        assert mondays.crontab == "0 9 * * 1"

    def test_a_job_scheduled_by_a_function_of_its_own_is_listed_without_times(self, hand_scheduled_job):
        status = next(s for s in jobs_status(now=NOW) if s.job.function == "at_seven_past")

        assert status.job.schedule is None and status.next_run_at is None and not status.late

    def test_a_crontab_that_never_matches_has_no_moments(self):
        never = Schedule(months=[2], days=[31], weekdays=range(7), hours=[0], minutes=[0])

        assert never.moments_before(NOW, 3) == [] and never.next_after(NOW) is None


class TestLateness:
    every_5 = property(lambda self: schedule_of("billing.tasks.reconcile_payments"))

    def test_a_job_that_missed_three_periods_is_late_and_two_is_not(self):
        def late(last_started_at):
            return job_is_late(self.every_5, last_started_at=last_started_at, running_since=None, now=NOW)

        # Due at 10:10, 10:05 and 10:00 before NOW (10:12:30).
        assert late(datetime(2026, 12, 7, 9, 59, 59, tzinfo=UTC))  # missed 10:00, 10:05 and 10:10
        assert not late(datetime(2026, 12, 7, 10, 0, 2, tzinfo=UTC))  # missed 10:05 and 10:10 only

    def test_a_job_never_run_counts_from_when_runs_were_first_recorded(self):
        def late(running_since):
            return job_is_late(self.every_5, last_started_at=None, running_since=running_since, now=NOW)

        assert late(NOW - timedelta(minutes=13))
        assert not late(NOW - timedelta(minutes=11))
        assert not late(None)  # nothing recorded at all: the consumer has not run yet

    def test_the_status_reads_each_jobs_newest_run_and_its_last_real_start(self):
        job_run("billing.tasks.reconcile_payments", started_at=NOW - timedelta(minutes=20), result=2)
        job_run("billing.tasks.reconcile_payments", started_at=NOW - timedelta(minutes=17), outcome=Outcome.RUNNING)
        skipped = job_run(
            "billing.tasks.reconcile_payments", started_at=NOW - timedelta(minutes=2), outcome=Outcome.SKIPPED_LOCKED
        )

        status = next(s for s in jobs_status(now=NOW) if s.job.name == "billing.tasks.reconcile_payments")

        assert status.last_run == skipped
        assert status.last_started_at == NOW - timedelta(minutes=17)
        assert status.late  # held by a run that started 17 minutes ago: none of 10:00, 10:05, 10:10 started
        assert status.next_run_at == datetime(2026, 12, 7, 10, 15, tzinfo=UTC)

    def test_the_status_costs_one_query_however_many_runs(self, django_assert_num_queries):
        for minutes in range(0, 300, 5):
            for job in periodic_jobs():
                job_run(job.name, started_at=NOW - timedelta(minutes=minutes))

        with django_assert_num_queries(1):
            statuses = jobs_status(now=NOW)

        assert len(statuses) == len(periodic_jobs()) and not any(status.late for status in statuses)
