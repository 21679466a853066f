"""The periodic jobs: which there are (Huey's registry, wherever their tasks are defined), how each run
went (JobRun), when each is due next, and which are late.

A job is late once it has not started for LATE_AFTER_PERIODS of its periods: its newest run that
really started (not one its lock refused) is older than the third most recent moment its crontab
was due. A job that never ran counts from the later of the oldest run recorded (of any job) and
the start of the process that asks (PROCESS_STARTED_AT), so a job a deployment adds is given its
three periods after the restart that brings it, and nothing is late before the consumer has
recorded a run.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone
from huey.contrib.djhuey import HUEY

from billing.models import JobRun
from billing.schedules import Schedule

LATE_AFTER_PERIODS = 3
# An error as long as this is enough to read; a traceback is in the consumer's log.
ERROR_LENGTH = 2000
PROCESS_STARTED_AT = timezone.now()


@dataclass(frozen=True)
class Job:
    name: str  # Huey's: "<module>.<function>"
    schedule: Schedule | None  # None for a periodic task whose test is not a crontab

    @property
    def function(self):
        return self.name.rpartition(".")[2]


@dataclass(frozen=True)
class JobStatus:
    job: Job
    last_run: JobRun | None  # the newest, whatever came of it
    last_started_at: datetime | None  # of the newest run that started (its lock let it)
    next_run_at: datetime | None
    late: bool


def job_name(task_class):
    """A task's name as Huey's registry writes it."""
    return f"{task_class.__module__}.{task_class.__name__}"


def periodic_jobs(huey=HUEY):
    """Every periodic task Huey has registered, by name. (Huey has no public listing of them.)"""
    jobs = (Job(name=job_name(task), schedule=Schedule.of(task)) for task in huey._registry._periodic_tasks)
    return sorted(jobs, key=lambda job: job.name)


def job_run_start(*, task, started_at):
    """Record that a run of `task` started; returns the run's id for job_run_finish."""
    return JobRun.objects.create(task=task, started_at=started_at).pk


def job_run_finish(*, run_id, task, outcome, duration_ms, result=None, error=""):
    """Record how the run ended, then delete the job's runs older than JOB_RUNS_KEEP_DAYS in one
    statement, never the run just finished: a job's latest run is always kept."""
    now = timezone.now()
    JobRun.objects.filter(pk=run_id).update(
        finished_at=now,
        duration_ms=max(0, round(duration_ms)),
        outcome=outcome,
        result=result if isinstance(result, int) and not isinstance(result, bool) else None,
        error=error[:ERROR_LENGTH],
    )
    expired = JobRun.objects.filter(task=task, started_at__lt=now - timedelta(days=settings.JOB_RUNS_KEEP_DAYS))
    expired.exclude(pk=run_id).delete()


def job_is_late(schedule, *, last_started_at, running_since, now):
    """Whether a job with `schedule` has missed LATE_AFTER_PERIODS of its moments before `now`."""
    if schedule is None:
        return False
    due = schedule.moments_before(now, LATE_AFTER_PERIODS)
    since = last_started_at or running_since
    return len(due) == LATE_AFTER_PERIODS and since is not None and since < due[-1]


def jobs_status(*, now, huey=HUEY, process_started_at=PROCESS_STARTED_AT):
    """Each periodic job with its newest run, next run and lateness, in one query."""
    runs = {run.task: run for run in _newest_runs()}
    oldest = min((run.first_recorded_at for run in runs.values()), default=None)
    running_since = max(oldest, process_started_at) if oldest else None
    statuses = []
    for job in periodic_jobs(huey):
        run = runs.get(job.name)
        last_started_at = run.last_started_at if run else None
        statuses.append(
            JobStatus(
                job=job,
                last_run=run,
                last_started_at=last_started_at,
                next_run_at=job.schedule.next_after(now) if job.schedule else None,
                late=job_is_late(job.schedule, last_started_at=last_started_at, running_since=running_since, now=now),
            )
        )
    return statuses


def jobs_late(*, now, huey=HUEY):
    return [status for status in jobs_status(now=now, huey=huey) if status.late]


def job_results(*, tasks):
    """{task: its newest finished run that succeeded}, for what a job's result means (the ledger
    check's drift, the records a reconciliation had to correct)."""
    newest = (
        JobRun.objects.filter(task__in=tasks, outcome=JobRun.Outcome.SUCCEEDED)
        .values("task")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    return {run.task: run for run in JobRun.objects.filter(pk__in=newest)}


def _newest_runs():
    """The newest run of each job (runs are inserted as they start, so the highest id), with when its
    newest real start was and when the oldest run still kept began."""
    newest = JobRun.objects.values("task").annotate(newest=Max("id")).values("newest")
    started = (
        JobRun.objects.filter(task=OuterRef("task"))
        .exclude(outcome=JobRun.Outcome.SKIPPED_LOCKED)
        .order_by("-started_at")
        .values("started_at")[:1]
    )
    oldest = JobRun.objects.order_by("started_at").values("started_at")[:1]
    return JobRun.objects.filter(pk__in=newest).annotate(
        last_started_at=Subquery(started), first_recorded_at=Subquery(oldest)
    )
