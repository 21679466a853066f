"""Monthly statements of account emailed to the students who asked for them."""

from django.db import models

from billing.models.hours import Account


class StatementEmail(models.Model):
    """One month's statement emailed to one student: claimed (the row) before it is sent, so that a
    second run of the monthly job, or two at once, sends it once."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="statements_emailed")
    # The first day of the month the statement covers.
    month = models.DateField()
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "month"], name="statement_email_once_per_month")]

    def __str__(self):
        return f"Statement of {self.month.isoformat()[:7]} for {self.account}"
