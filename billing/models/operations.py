"""How the background jobs ran: one row per run of a periodic Huey task, for the console's System page
and the stale-job staff alert."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class JobRun(models.Model):
    """One run of one periodic task, from the moment the consumer starts it to its outcome.

    Written by the Huey hooks of portal/job_runs.py; a job's runs older than JOB_RUNS_KEEP_DAYS are
    deleted when it next finishes, so its latest run is always kept.
    """

    class Outcome(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        # lock_task refused it: the previous run of the same job still held the lock.
        SKIPPED_LOCKED = "skipped_locked", _("Skipped (still running)")

    # Huey's name of the task: "<module>.<function>", e.g. "billing.tasks.reconcile_payments".
    task = models.CharField(max_length=150)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RUNNING)
    # What the task returned when it was a number: records fixed, events retried, alerts raised...
    result = models.BigIntegerField(null=True, blank=True)
    # The exception's type and message, scrubbed of secrets before it is saved.
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["task", "-started_at"], name="job_run_task_newest_first"),
            # The oldest run kept: where a job that never ran counts its periods from.
            models.Index(fields=["started_at"], name="job_run_started"),
        ]

    def __str__(self):
        return f"{self.task} at {self.started_at.isoformat()} ({self.outcome})"
