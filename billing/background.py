"""Background work that a service asks for once its transaction commits.

The Huey task modules sit on top: they import the services and call them. So that no service ever
imports a task module (not even inside a function, which is how import cycles hide), a service
names one of the jobs below instead, and `billing.tasks` connects each job to its Huey task when
the app loads (`BillingConfig.ready`). This module imports nothing of the project.
"""

from django.db import transaction


class Job:
    """One kind of background work, run by the task connected to it."""

    def __init__(self, name):
        self.name = name
        self.task = None

    def __repr__(self):
        return f"<background job {self.name!r}>"

    def connect(self, task):
        self.task = task

    def enqueue(self, *args):
        if self.task is None:
            raise RuntimeError(f"No task runs {self!r}: billing.tasks connects the jobs when the app loads.")
        return self.task(*args)

    def on_commit(self, *args, robust=False):
        """Enqueue once the current transaction commits (at once outside one). `robust`: a queue
        that is down is logged instead of failing the committed work, which a sweep finds later."""
        transaction.on_commit(lambda: self.enqueue(*args), robust=robust)


process_event = Job("process a stored Stripe event")
deliver_receipt = Job("render a new receipt's PDF and email it")
resend_receipt = Job("email a receipt again")
cancel_blocked_payments = Job("cancel a blocked account's payments waiting for 3-D Secure")
# The available balance of these accounts fell (billing.ledger), or their automatic top-up changed.
top_up_check = Job("check the automatic top-up of accounts")
# Connected by alerts.tasks (billing does not import the alerts): staff moved these lots' expiry.
lot_alerts_refresh = Job("resolve the expiry alerts of lots whose expiry moved")

JOBS = (process_event, deliver_receipt, resend_receipt, cancel_blocked_payments, top_up_check, lot_alerts_refresh)
