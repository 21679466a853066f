"""Subscriptions: a plan's hours every period, billed by Stripe Billing.

Stripe owns the schedule (periods, invoices, its retries); we keep a copy of what the student
needs to see, and every paid invoice becomes a Payment (billing.models.payments) with the period's
lot, so that receipts, refunds and disputes treat it like any other payment.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext, pgettext_lazy

from billing.models.hours import Account, Plan
from billing.models.payments import PaymentMethod


class SubscriptionStatus(models.TextChoices):
    # Ours: the row exists before Stripe is called (like a Payment), so a double click or a crash
    # between the two finds it.
    STARTING = "starting", pgettext_lazy("subscription status", "Starting")
    # Stripe's own.
    INCOMPLETE = "incomplete", pgettext_lazy("subscription status", "Waiting for the first payment")
    TRIALING = "trialing", pgettext_lazy("subscription status", "Active (trial)")
    ACTIVE = "active", pgettext_lazy("subscription status", "Active")
    PAST_DUE = "past_due", pgettext_lazy("subscription status", "Past due")
    UNPAID = "unpaid", pgettext_lazy("subscription status", "Unpaid")
    PAUSED = "paused", pgettext_lazy("subscription status", "Paused")
    CANCELED = "canceled", pgettext_lazy("subscription status", "Ended")
    INCOMPLETE_EXPIRED = "incomplete_expired", pgettext_lazy("subscription status", "Not started")


class Subscription(models.Model):
    """A student's subscription to a plan. At most one per account is live (not ended) at a time."""

    Status = SubscriptionStatus
    # Ended for good: Stripe never brings a canceled subscription back.
    ENDED = frozenset({Status.CANCELED, Status.INCOMPLETE_EXPIRED})
    LIVE = frozenset(set(Status) - ENDED)
    # A payment is owed and not made: the student is asked to pay (dunning).
    OVERDUE = frozenset({Status.PAST_DUE, Status.UNPAID})
    # Hours arrive each period.
    RUNNING = frozenset({Status.ACTIVE, Status.TRIALING})

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STARTING)
    idempotency_key = models.CharField(max_length=64, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_item_id = models.CharField(max_length=255, blank=True)
    # The card it charges: the account's default card when it started or last changed card.
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, null=True, blank=True, related_name="subscriptions"
    )
    cancel_at_period_end = models.BooleanField(default=False)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Why it did not start, or why the last renewal failed, in words for the student.
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Not stored: subscription_start sets it when a repeated click found the subscription it made.
    replayed = False

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "current_period_end"]),
            models.Index(fields=["-created_at", "-id"], name="subscription_newest_first"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=~Q(status__in=[SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED]),
                name="subscription_one_live_per_account",
            ),
        ]

    def __str__(self):
        return f"Subscription {self.pk} to {self.plan} ({self.get_status_display()})"

    @property
    def live(self):
        return self.status in self.LIVE

    @property
    def ended(self):
        return self.status in self.ENDED

    @property
    def display_status(self):
        """What the student and staff read: Stripe's status, and "cancels at period end" for an
        active subscription that will not renew."""
        if self.cancel_at_period_end and self.status in self.RUNNING | self.OVERDUE:
            return gettext("Cancels at period end")
        return self.get_status_display()
