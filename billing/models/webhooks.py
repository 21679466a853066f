"""Stripe events as they reached us."""

import re

from django.db import models
from django.utils.translation import gettext_lazy as _

REDACTED = "[redacted]"


# A client secret inside a text, e.g. a 3-D Secure redirect URL's `?payment_intent_client_secret=pi_1_secret_2`
# or a source's `src_client_secret_3`.
SECRET_IN_TEXT = re.compile(r"\b(?:[A-Za-z0-9]+_)+secret_[A-Za-z0-9]+")


def secrets_redacted(value):
    """A Stripe object as staff may read it: every value under a key naming a secret (PaymentIntents'
    and SetupIntents' `client_secret`, ephemeral keys' `secret`, anything Stripe names so tomorrow)
    replaced, and any client secret inside a text (a URL), at any depth. A client secret lets
    whoever holds it confirm the intent."""
    if isinstance(value, dict):
        return {
            key: REDACTED if "secret" in str(key).lower() else secrets_redacted(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [secrets_redacted(item) for item in value]
    if isinstance(value, str):
        return SECRET_IN_TEXT.sub(REDACTED, value)
    return value


class WebhookEvent(models.Model):
    """One Stripe event as it reached us, and what processing it did."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSING = "processing", _("Processing")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed")
        WAITING = "waiting", _("Waiting for its object")
        ORPHAN = "orphan", _("Orphan")
        IGNORED = "ignored", _("Ignored")

    FINISHED = frozenset({Status.PROCESSED, Status.IGNORED})
    # What staff (and the console's "retry") may send for another attempt.
    RETRYABLE = frozenset({Status.FAILED, Status.WAITING, Status.ORPHAN})

    class Source(models.TextChoices):
        WEBHOOK = "webhook", _("Webhook")
        POLL = "poll", _("Fetched from Stripe")

    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=40, blank=True)
    payload = models.JSONField()
    # The PaymentIntent the event is about (directly or through its charge, refund or dispute), so
    # a payment's timeline finds its events without reading every payload.
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_created_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.WEBHOOK)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    processing_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["type", "-received_at"]),
            models.Index(fields=["status", "-received_at"]),
            models.Index(fields=["-received_at", "-id"], name="webhook_event_newest_first"),
        ]

    def __str__(self):
        return f"{self.type} {self.stripe_event_id} ({self.status})"

    @property
    def can_retry(self):
        return self.status in self.RETRYABLE
