"""Notifications to students: shown in the app (always) and emailed (unless the student opts out)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Notification(models.Model):
    class Kind(models.TextChoices):
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        SUBSCRIPTION_PAST_DUE = "subscription_past_due", "Subscription payment failed"
        PAYMENT_NEEDS_ACTION = "payment_needs_action", "Payment needs your confirmation"
        PAYMENT_UNDER_REVIEW = "payment_under_review", "Payment under review"
        BALANCE_DEPLETED = "balance_depleted", "No hours left"
        LOT_EXPIRING_1D = "lot_expiring_1d", "Hours expiring tomorrow"
        LOW_BALANCE = "low_balance", "Low balance"
        LOT_EXPIRING_7D = "lot_expiring_7d", "Hours expiring within a week"
        LOT_EXPIRED = "lot_expired", "Hours expired"
        CARD_EXPIRING = "card_expiring", "Card expiring"
        PAYMENT_SUCCEEDED = "payment_succeeded", "Payment received"
        SUBSCRIPTION_RENEWING = "subscription_renewing", "Subscription renews soon"
        SUBSCRIPTION_ENDED = "subscription_ended", "Subscription ended"

    class Email(models.TextChoices):
        PENDING = "pending", "To send"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Turned off by the student"
        FAILED = "failed", "Could not be sent"

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField()
    link = models.CharField(max_length=300, blank=True)
    # The same alert about the same subject in the same period has the same key: it exists once.
    dedupe_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # When what it warned about stopped being true (the payment went through, the lot was used up):
    # it then leaves the bell and the banner, and stays in the inbox as history.
    resolved_at = models.DateTimeField(null=True, blank=True)
    email_status = models.CharField(max_length=10, choices=Email.choices, default=Email.PENDING)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    email_next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The subject the alert is about, so a scan can find and resolve it.
    subject_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["recipient"],
                condition=Q(read_at__isnull=True, resolved_at__isnull=True),
                name="notification_open",
            ),
            models.Index(
                fields=["kind", "subject_id"], condition=Q(resolved_at__isnull=True), name="notification_unresolved"
            ),
            models.Index(fields=["recipient", "-created_at"], name="notification_inbox"),
            models.Index(fields=["email_status", "created_at"], name="notification_email_due"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} for {self.recipient}"


class EmailOptOut(models.Model):
    """A kind of notification the student does not want by email (in the app it always shows)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_opt_outs")
    kind = models.CharField(max_length=30, choices=Notification.Kind.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="email_opt_out_once")]

    def __str__(self):
        return f"{self.user} opts out of {self.kind} emails"
