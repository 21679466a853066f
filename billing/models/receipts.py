"""Receipts and credit notes, and the counters that number them."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.models.hours import Account
from billing.models.payments import Payment, Refund


class ReceiptCounter(models.Model):
    """The last number given out in one series and year; its row lock makes numbering gapless."""

    series = models.CharField(max_length=20)
    year = models.PositiveIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "year"], name="receipt_counter_one_per_series_year")]

    def __str__(self):
        return f"{self.series} {self.year}: {self.last_number}"


class Receipt(models.Model):
    """An immutable document for a payment (a receipt), a refund (a credit note), or a refund that
    failed after its credit note was issued (a cancellation of that credit note).

    `snapshot` holds everything the document states, frozen when it was issued; the PDF is rendered
    from it once and stored. The number never changes, whatever happens to the PDF.
    """

    class Kind(models.TextChoices):
        RECEIPT = "receipt", _("Receipt")
        CREDIT_NOTE = "credit_note", _("Credit note")
        # Numbered in the credit notes' series (see billing.receipts.SERIES).
        CANCELLATION = "cancellation", _("Credit note cancellation")

    kind = models.CharField(max_length=20, choices=Kind.choices)
    number = models.CharField(max_length=30, unique=True)
    year = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField()
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="receipts")
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="receipt")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_note")
    corrects = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_notes")
    # One-to-one: a credit note is cancelled at most once, whatever Stripe repeats.
    cancels = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="cancellation")
    issued_at = models.DateTimeField()
    snapshot = models.JSONField()
    pdf = models.FileField(upload_to="receipts/", blank=True)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [models.Index(fields=["account", "-issued_at"])]
        constraints = [
            # Cancellations share the credit notes' series: `number` (unique) keeps each number of
            # that series once across both kinds.
            models.UniqueConstraint(fields=["kind", "year", "sequence"], name="receipt_number_once_per_series"),
            models.CheckConstraint(
                condition=Q(kind="receipt", payment__isnull=False, refund__isnull=True, cancels__isnull=True)
                | Q(kind="credit_note", refund__isnull=False, payment__isnull=True, cancels__isnull=True)
                | Q(kind="cancellation", cancels__isnull=False, payment__isnull=True, refund__isnull=True),
                name="receipt_belongs_to_a_payment_a_refund_or_a_credit_note",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.number}"

    @property
    def filename(self):
        prefix = {self.Kind.CREDIT_NOTE: "credit-note", self.Kind.CANCELLATION: "credit-note-cancellation"}
        return f"{prefix.get(self.kind, 'receipt')}-{self.number}.pdf"
