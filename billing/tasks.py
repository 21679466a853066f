"""Huey tasks of the billing domain: thin wrappers over the services."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task

from billing.ledger import lots_expire_due


@db_periodic_task(crontab(minute="*/5"))
@lock_task("billing-expire-lots")
def expire_due_lots():
    return len(lots_expire_due())
