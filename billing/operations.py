"""What the console's System page reads: each periodic job and how it last ran, the queue's depth, the
Stripe events and payments not yet settled (the overview's own figures, billing.reports), and what
the last ledger check and reconciliations found. A fixed number of queries, whatever the history.
"""

import logging
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _
from huey.contrib.djhuey import HUEY

from billing.jobs import job_results, jobs_status
from billing.reports import events_unapplied, payments_unsettled

logger = logging.getLogger(__name__)

# The jobs whose result is a figure staff read: what the daily ledger check found out of balance
# (the reconciliation's drift), and the records each reconciliation had to settle with Stripe.
LEDGER_CHECK = "billing.tasks.check_ledger"
RECONCILIATIONS = (
    ("billing.tasks.reconcile_payments", _("Payments settled with Stripe")),
    ("billing.tasks.reconcile_refunds", _("Refunds settled with Stripe")),
    ("billing.tasks.reconcile_subscriptions", _("Subscriptions checked against Stripe")),
)


@dataclass(frozen=True)
class QueueDepth:
    pending: int  # waiting for a worker
    scheduled: int  # to run later: retries with a delay, tasks given an eta


@dataclass(frozen=True)
class Reconciliation:
    task: str
    label: str
    run: object  # its newest successful JobRun, or None


@dataclass(frozen=True)
class SystemStatus:
    jobs: list
    queue: QueueDepth | None  # None while the queue does not answer
    events: dict  # {"failed": n, "waiting": n}
    payments: dict  # {"in_flight": n, "needs_review": n}
    ledger_check: object  # its newest successful JobRun, or None before the first
    reconciliations: list

    @property
    def late_jobs(self):
        return sum(status.late for status in self.jobs)

    @property
    def drift(self):
        """Accounts out of balance at the last ledger check (None before its first run)."""
        return self.ledger_check.result if self.ledger_check else None


def system_status(*, now, huey=HUEY):
    results = job_results(tasks=[LEDGER_CHECK, *(task for task, _label in RECONCILIATIONS)])
    return SystemStatus(
        jobs=jobs_status(now=now, huey=huey),
        queue=queue_depth(huey),
        events=events_unapplied(),
        payments=payments_unsettled(),
        ledger_check=results.get(LEDGER_CHECK),
        reconciliations=[Reconciliation(task, label, results.get(task)) for task, label in RECONCILIATIONS],
    )


def queue_depth(huey=HUEY):
    """What the queue holds, or None when it cannot be read: the page still shows the rest, and
    /readyz is where a queue that is down fails."""
    try:
        return QueueDepth(pending=huey.pending_count(), scheduled=huey.scheduled_count())
    except Exception:
        logger.warning("The job queue could not be read for the System page.", exc_info=True)
        return None
