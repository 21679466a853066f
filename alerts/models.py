"""Notifications to students and to staff: shown in the app (always) and emailed (unless the person
opts out of that kind). Staff kinds start with "staff_" and never reach a student's bell."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Notification(models.Model):
    class Kind(models.TextChoices):
        # Students' kinds, most urgent first (the banner's order), then staff's.
        PAY_AGAIN = "pay_again", _("Please pay again")
        PAYMENT_FAILED = "payment_failed", _("Payment failed")
        SUBSCRIPTION_PAST_DUE = "subscription_past_due", _("Subscription payment failed")
        PAYMENT_NEEDS_ACTION = "payment_needs_action", _("Payment needs your confirmation")
        PAYMENT_UNDER_REVIEW = "payment_under_review", _("Payment under review")
        AUTO_TOP_UP_PAUSED = "auto_top_up_paused", _("Automatic top-up paused")
        DISPUTE_HOLD = "dispute_hold", _("Hours on hold for a dispute")
        REFUND_HOURS = "refund_hours", _("Hours taken back after a refund")
        BALANCE_DEPLETED = "balance_depleted", _("No hours left")
        LOT_EXPIRING_1D = "lot_expiring_1d", _("Hours expiring tomorrow")
        LOW_BALANCE = "low_balance", _("Low balance")
        LOT_EXPIRING_7D = "lot_expiring_7d", _("Hours expiring within a week")
        LOT_EXPIRED = "lot_expired", _("Hours expired")
        CARD_EXPIRING = "card_expiring", _("Card expiring")
        PAYMENT_SUCCEEDED = "payment_succeeded", _("Payment received")
        SUBSCRIPTION_RENEWING = "subscription_renewing", _("Subscription renews soon")
        SUBSCRIPTION_ENDED = "subscription_ended", _("Subscription ended")
        DISPUTE_RELEASED = "dispute_released", _("Hours released after a dispute")
        STAFF_DISPUTE_OPENED = "staff_dispute_opened", _("New dispute")
        STAFF_EVIDENCE_DUE = "staff_evidence_due", _("Dispute evidence due soon")
        STAFF_FRAUD_FLAG = "staff_fraud_flag", _("New fraud flag")
        STAFF_WEBHOOK_FAILED = "staff_webhook_failed", _("Webhook events failed")
        STAFF_PAYMENT_STUCK = "staff_payment_stuck", _("Payments stuck in flight")
        STAFF_JOB_STALE = "staff_job_stale", _("Background job late")

    class Email(models.TextChoices):
        PENDING = "pending", pgettext_lazy("alert email", "To send")
        SENDING = "sending", pgettext_lazy("alert email", "Being sent")
        SENT = "sent", pgettext_lazy("alert email", "Sent")
        SKIPPED = "skipped", pgettext_lazy("alert email", "Turned off by the recipient")
        FAILED = "failed", pgettext_lazy("alert email", "Could not be sent")

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    # What it says as written when raised, in the site's default language and time zone: what reads
    # the table itself (the admin, dispute evidence for Stripe) and the text of an alert without
    # `params`. People read `title` and `body`, in their own language.
    stored_title = models.CharField(max_length=200, db_column="title")
    stored_body = models.TextField(db_column="body")
    # The facts its text is built from (alerts.texts), so that each reader gets it in their language
    # and time zone; null for an alert written as fixed text (raised before alerts were translated).
    params = models.JSONField(null=True, blank=True)
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

    @property
    def title(self):
        return self._text()[0]

    @title.setter
    def title(self, text):
        self.stored_title = text

    @property
    def body(self):
        return self._text()[1]

    @body.setter
    def body(self, text):
        self.stored_body = text

    def _text(self):
        """(title, body) in the active language and time zone, built once per language and zone: a
        list reads both the title and the body of every row."""
        if self.params is None:
            return self.stored_title, self.stored_body
        locale = (translation.get_language(), timezone.get_current_timezone_name())
        built = getattr(self, "_built_text", None)
        if built is None or built[0] != locale:
            from alerts.texts import alert_text  # here, not on top: it reads billing's models and services

            built = self._built_text = (locale, alert_text(self.kind, self.params))
        return built[1]


STAFF_KINDS = frozenset(kind for kind in Notification.Kind.values if kind.startswith("staff_"))
STUDENT_KINDS = [kind for kind in Notification.Kind.values if kind not in STAFF_KINDS]


class EmailOptOut(models.Model):
    """A kind of notification its recipient does not want by email (in the app it always shows)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_opt_outs")
    kind = models.CharField(max_length=30, choices=Notification.Kind.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="email_opt_out_once")]

    def __str__(self):
        return f"{self.user} opts out of {self.kind} emails"
