"""Automatic top-up: a student's standing order to buy a package when their hours run low, within a
monthly cap, and the history of what it did."""

from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.models.hours import Account, Plan
from billing.models.payments import Payment, PaymentMethod


class AutoTopUp(models.Model):
    """ "When my available balance falls below `threshold_minutes`, buy `plan` with `card`", at most
    `monthly_count_cap` times and `monthly_amount_cap_cents` a calendar month (the school's time zone).

    An episode is one fall below the threshold: it opens when a check finds the balance below and
    makes one payment (its idempotency key names the episode), and it closes when the balance is
    back at or above the threshold, or when its payment failed without charging (so that a later
    check may try once more, a new episode). Only billing.topups writes these rows."""

    class Status(models.TextChoices):
        OFF = "off", _("Off")
        ACTIVE = "active", _("On")
        PAUSED = "paused", _("Paused")

    class PauseReason(models.TextChoices):
        AUTHENTICATION = "authentication", _("Your bank asked to confirm a payment")
        DECLINED = "declined", _("Two payments in a row were declined")
        CAP = "cap", _("This month's limit is reached")
        REFUSED = "refused", _("The payment provider refused the payment")
        FAILING = "failing", _("Payments kept failing without reaching your bank")
        REVIEW = "review", _("A payment is being checked by our staff")
        STUDENT = "student", _("Paused by you")
        STAFF = "staff", _("Paused by your school")
        CARD_REMOVED = "card_removed", _("The card was removed")
        PLAN_UNAVAILABLE = "plan_unavailable", _("The package is no longer on sale")
        BLOCKED = "blocked", _("Buying is paused on your account")

    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="auto_top_up")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OFF)
    threshold_minutes = models.PositiveIntegerField()
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    card = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="+")
    monthly_count_cap = models.PositiveSmallIntegerField()
    monthly_amount_cap_cents = models.PositiveIntegerField()
    pause_reason = models.CharField(max_length=20, choices=PauseReason.choices, blank=True)
    # The words that go with the pause: the bank's decline message, or staff's reason.
    pause_detail = models.CharField(max_length=300, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    # A pause for the monthly cap ends by itself when the month turns (midnight in the school's zone).
    resumes_at = models.DateTimeField(null=True, blank=True)
    # What a pause by staff paused over (empty: it was running), given back when staff lift theirs.
    paused_over_reason = models.CharField(max_length=20, choices=PauseReason.choices, blank=True)
    paused_over_detail = models.CharField(max_length=300, blank=True)
    episode = models.PositiveIntegerField(default=0)
    episode_open = models.BooleanField(default=False)
    declines_in_row = models.PositiveSmallIntegerField(default=0)
    # Failures of any kind in a row (declines, Stripe unreachable...), and when the next try may be.
    failures_in_row = models.PositiveSmallIntegerField(default=0)
    retry_after = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(threshold_minutes__gt=0), name="auto_top_up_threshold_positive"),
            models.CheckConstraint(condition=Q(monthly_count_cap__gt=0), name="auto_top_up_count_cap_positive"),
            models.CheckConstraint(condition=Q(monthly_amount_cap_cents__gt=0), name="auto_top_up_amount_cap_positive"),
            models.CheckConstraint(
                condition=Q(status="paused") & ~Q(pause_reason="") | ~Q(status="paused") & Q(pause_reason=""),
                name="auto_top_up_paused_has_reason",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="auto_top_up_by_status")]

    def __str__(self):
        return f"Automatic top-up of {self.account} ({self.status})"

    @property
    def resumes_on(self):
        """The day a cap pause ends, as the school's calendar has it (the cap's months are its)."""
        return self.resumes_at.astimezone(ZoneInfo(settings.TIME_ZONE)).date() if self.resumes_at else None


class AutoTopUpEvent(models.Model):
    """One thing automatic top-up did or was told: the history the console shows."""

    class Kind(models.TextChoices):
        SAVED = "saved", _("Settings saved")
        TURNED_OFF = "turned_off", _("Turned off")
        TRIGGERED = "triggered", _("Balance fell below the threshold")
        CHARGED = "charged", _("Topped up")
        AWAITING_BANK = "awaiting_bank", _("Waiting for the bank's confirmation")
        IN_REVIEW = "in_review", _("Payment left for staff review")
        SETTLED_BY_STAFF = "settled_by_staff", _("Payment settled by staff")
        DECLINED = "declined", _("Payment declined")
        FAILED = "failed", _("Payment failed")
        PAUSED = "paused", _("Paused")
        RESUMED = "resumed", _("Resumed")

    auto_top_up = models.ForeignKey(AutoTopUp, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    episode = models.PositiveIntegerField(default=0)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    pause_reason = models.CharField(max_length=20, choices=AutoTopUp.PauseReason.choices, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    # Who said so (the student, staff); empty for what the checks did.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["auto_top_up", "-created_at", "-id"], name="auto_top_up_event_history")]
        constraints = [
            # What a payment's state meant for the top-up is recorded once per state.
            models.UniqueConstraint(
                fields=["payment", "kind"],
                condition=Q(payment__isnull=False),
                name="auto_top_up_event_once_per_payment",
            ),
            models.UniqueConstraint(
                fields=["auto_top_up", "episode"],
                condition=Q(kind="triggered"),
                name="auto_top_up_one_trigger_per_episode",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.auto_top_up_id})"
