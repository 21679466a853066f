"""The audit log of staff actions in the console: append-only, like the ledger."""

from functools import partial

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from billing.models.redaction import BATCH, rows_rewritten, words_replaced


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValueError("Audit entries are append-only.")

    def delete(self):
        raise ValueError("Audit entries are append-only.")

    def personal_data_replace(self, *, replacements):
        """The one rewrite audit entries allow: erasing a student at their request (GDPR article 17)
        replaces their email and names (`replacements`: {text: what replaces it}) wherever these
        entries copied them (label, reason, actor's email, before and after; see `words_replaced`).
        What was done, by whom, when and to which object stays as it was. Returns how many changed."""
        fields = ["target_label", "reason", "actor_email", "before", "after"]
        changed = list(rows_rewritten(self, fields, partial(words_replaced, replacements=replacements)))
        # A plain QuerySet: this class refuses update(), which bulk_update goes through.
        models.QuerySet(self.model, using=self.db).bulk_update(changed, fields, batch_size=BATCH)
        return len(changed)


class AuditEntry(models.Model):
    """One console action: who did what to which object, the state before and after, and why.

    The account and payment it concerns are kept as links so that the entry shows on the student's
    and the payment's pages; the actor's email is copied so the entry reads the same if the staff
    account is ever removed.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    actor_email = models.EmailField()
    action = models.CharField(max_length=60)
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=200)
    account = models.ForeignKey("billing.Account", on_delete=models.PROTECT, null=True, related_name="audit_entries")
    payment = models.ForeignKey("billing.Payment", on_delete=models.PROTECT, null=True, related_name="audit_entries")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = _("audit entries")
        indexes = [
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["action", "-created_at"]),
            models.Index(fields=["-created_at", "-id"], name="audit_entry_newest_first"),
        ]
        permissions = [
            ("console_support", "Can use the staff console: read, retry webhooks, resend receipts, clear flags"),
            ("console_finance", "Can move money and hours in the console: refunds, disputes, adjustments, blocks"),
        ]

    def __str__(self):
        return f"{self.actor_email} {self.action} {self.target_label}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit entries are append-only.")


class ActionKey(models.Model):
    """The one-time key of a console form (record a session, adjust or grant hours...): saved in the
    same transaction as the action, so a double submit, or two at once, acts once."""

    key = models.CharField(max_length=64, unique=True)
    action = models.CharField(max_length=60)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.action} {self.key}"
