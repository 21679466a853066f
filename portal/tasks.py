"""Huey jobs of the portal: the ones that span the apps (the portal is what knows all of them)."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task

from portal.retention import retention_apply


@db_periodic_task(crontab(hour="4", minute="0"))
@lock_task("portal-retention")
def apply_retention():
    """Forget what has been kept long enough (portal.retention): daily at 04:00 UTC, at night in
    Europe when little else runs (after the 03:30 ledger check). Returns how many records it deleted,
    emptied or redacted."""
    run = retention_apply()
    return run.sign_ins_deleted + run.read_alerts_deleted + run.event_bodies_emptied + run.late_events_redacted
