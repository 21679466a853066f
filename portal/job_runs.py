"""Every run of every periodic Huey task, recorded as a JobRun (billing.jobs), whichever app defines
the task: connected once to the project's Huey when the portal app loads (PortalConfig.ready), in
the consumer as in web processes and in the tests' immediate mode.

Huey's SIGNAL_EXECUTING marks the start. The end is read in a post-execute hook rather than from
SIGNAL_COMPLETE / SIGNAL_ERROR / SIGNAL_LOCKED, because only the hook is handed the task's return
value (the records a job fixed) and its exception; a lock_task refusal arrives there as
TaskLockedException. Huey catches and logs what a hook or a receiver raises, so a database that
cannot record a run never stops the job itself. The error text is scrubbed like every log line.
"""

import time

from django.db import close_old_connections
from django.utils import timezone
from huey.api import PeriodicTask
from huey.exceptions import TaskLockedException
from huey.signals import SIGNAL_EXECUTING

from billing.jobs import job_name, job_run_finish, job_run_start
from billing.models import JobRun
from portal.logs import scrub


def job_runs_record(huey):
    @huey.signal(SIGNAL_EXECUTING)
    def job_run_started(signal, task):
        if not isinstance(task, PeriodicTask):
            return
        _fresh_connection(huey)
        task.job_run = (job_run_start(task=job_name(type(task)), started_at=timezone.now()), time.monotonic())

    @huey.post_execute()
    def job_run_finished(task, value, exception):
        run = getattr(task, "job_run", None)
        if run is None:
            return
        run_id, started = run
        _fresh_connection(huey)
        job_run_finish(
            run_id=run_id,
            task=job_name(type(task)),
            outcome=_outcome(exception),
            duration_ms=(time.monotonic() - started) * 1000,
            result=value,
            error="" if exception is None else scrub(f"{type(exception).__name__}: {exception}"),
        )


def _outcome(exception):
    if exception is None:
        return JobRun.Outcome.SUCCEEDED
    if isinstance(exception, TaskLockedException):
        return JobRun.Outcome.SKIPPED_LOCKED
    return JobRun.Outcome.FAILED


def _fresh_connection(huey):
    # What db_periodic_task does around the task itself: a worker thread's connection may have been
    # dropped by the database since its last job. (Immediate mode runs inside the caller's request
    # or test, whose connection is its own to manage.)
    if not huey.immediate:
        close_old_connections()
