"""The hours and money domain's data: accounts, plans, lots, the ledger and recorded usage.

Hours are stored as integer minutes (a 50-minute session is exact, 0.83 h is not); money as
integer cents plus an ISO currency. Only billing.ledger writes Lot remainders, LedgerEntry rows
and the cached Account balance.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


def default_currency():
    return settings.PORTAL_CURRENCY


def default_low_balance_minutes():
    return settings.PORTAL_LOW_BALANCE_MINUTES


class Account(models.Model):
    """A student's hours account. `balance_minutes` caches the sum of its ledger entries."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="account")
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    balance_minutes = models.IntegerField(default=0)
    low_balance_threshold_minutes = models.PositiveIntegerField(default=default_low_balance_minutes)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance_minutes__gte=0), name="account_balance_not_negative"),
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~Q(stripe_customer_id=""),
                name="account_stripe_customer_unique",
            ),
        ]

    def __str__(self):
        return f"Account of {self.user}"


class Plan(models.Model):
    """A package of hours for sale."""

    name = models.CharField(max_length=80)
    description = models.CharField(max_length=200, blank=True)
    minutes = models.PositiveIntegerField(help_text="Hours in the package, in minutes.")
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default=default_currency)
    validity_days = models.PositiveIntegerField(help_text="Days from purchase until unused hours expire.")
    is_active = models.BooleanField(default=True)
    is_featured = models.BooleanField(default=False)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "minutes"]
        constraints = [
            models.CheckConstraint(condition=Q(minutes__gt=0), name="plan_minutes_positive"),
            models.CheckConstraint(condition=Q(price_cents__gt=0), name="plan_price_positive"),
            models.CheckConstraint(condition=Q(validity_days__gt=0), name="plan_validity_positive"),
        ]

    def __str__(self):
        return self.name

    @property
    def price_per_hour_cents(self):
        return (self.price_cents * 60 + self.minutes // 2) // self.minutes  # integer, rounded half up


class LotQuerySet(models.QuerySet):
    def usable(self, at):
        """Lots whose hours could be drawn on at `at`: bought by then, not yet expired."""
        return self.filter(expired_at__isnull=True, minutes_remaining__gt=0, purchased_at__lte=at, expires_at__gt=at)


class Lot(models.Model):
    """One purchased (or granted) package of hours with its own expiry."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="lots", null=True, blank=True)
    name = models.CharField(max_length=80, help_text="What the student sees: the plan's name at purchase.")
    minutes_purchased = models.PositiveIntegerField()
    minutes_remaining = models.PositiveIntegerField()
    price_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default=default_currency)
    purchased_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    expired_at = models.DateTimeField(null=True, blank=True, help_text="When the expiry was booked.")

    objects = LotQuerySet.as_manager()

    class Meta:
        ordering = ["expires_at", "id"]
        indexes = [
            models.Index(fields=["account", "expires_at"]),
            models.Index(fields=["expires_at"]),
            models.Index(fields=["expired_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(minutes_purchased__gt=0), name="lot_minutes_purchased_positive"),
            models.CheckConstraint(condition=Q(expires_at__gt=F("purchased_at")), name="lot_expires_after_purchase"),
        ]

    def __str__(self):
        return f"{self.name} (lot {self.pk})"

    def is_expired(self, at=None):
        return self.expired_at is not None or self.expires_at <= (at or timezone.now())


class Usage(models.Model):
    """A tutoring session that drew hours from the account."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usages")
    occurred_at = models.DateTimeField()
    minutes = models.PositiveIntegerField()
    tutor = models.CharField(max_length=120)
    subject = models.CharField(max_length=120)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["account", "-occurred_at", "-id"])]
        constraints = [models.CheckConstraint(condition=Q(minutes__gt=0), name="usage_minutes_positive")]

    def __str__(self):
        return f"{self.subject} with {self.tutor}, {self.minutes} min"


class LedgerEntryQuerySet(models.QuerySet):
    """Append-only: the ledger is corrected by new entries, never by editing or deleting old ones."""

    def update(self, **kwargs):
        raise ValueError("Ledger entries are append-only.")

    def delete(self):
        raise ValueError("Ledger entries are append-only.")


class LedgerEntry(models.Model):
    """One append-only change to the hours of one lot. The balance is the sum of these."""

    class Kind(models.TextChoices):
        CREDIT = "credit", "Purchase"
        USAGE = "usage", "Session"
        EXPIRY = "expiry", "Expiry"
        REVERSAL = "reversal", "Reversal"
        ADJUSTMENT = "adjustment", "Adjustment"
        DISPUTE_HOLD = "dispute_hold", "Held for a dispute"
        DISPUTE_RELEASE = "dispute_release", "Released after a dispute"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries")
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    minutes = models.IntegerField(help_text="Signed change: positive adds hours, negative removes them.")
    balance_after = models.IntegerField(help_text="The account's balance in minutes right after this entry.")
    usage = models.ForeignKey(Usage, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries")
    reason = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    occurred_at = models.DateTimeField(help_text="When it happened in the business sense.")
    recorded_at = models.DateTimeField(auto_now_add=True)

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["account", "id"]), models.Index(fields=["kind", "occurred_at"])]
        constraints = [
            models.CheckConstraint(condition=~Q(minutes=0), name="ledger_entry_minutes_not_zero"),
            models.CheckConstraint(
                condition=Q(kind__in=["credit", "dispute_release"], minutes__gt=0)
                | Q(kind__in=["usage", "expiry", "reversal", "dispute_hold"], minutes__lt=0)
                | Q(kind="adjustment"),
                name="ledger_entry_sign_matches_kind",
            ),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_entry_balance_not_negative"),
            models.UniqueConstraint(fields=["lot"], condition=Q(kind="expiry"), name="ledger_entry_one_expiry_per_lot"),
            models.CheckConstraint(
                condition=Q(kind="usage", usage__isnull=False) | (~Q(kind="usage") & Q(usage__isnull=True)),
                name="ledger_entry_usage_only_for_sessions",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.minutes:+d} min on lot {self.lot_id}"

    def save(self, *args, **kwargs):
        # Append-only: a ledger is corrected by a new entry, never by editing an old one.
        if not self._state.adding:
            raise ValueError("Ledger entries are append-only.")
        super().save(*args, **kwargs)


class PaymentMethodQuerySet(models.QuerySet):
    def active(self):
        return self.filter(removed_at__isnull=True)


class PaymentMethod(models.Model):
    """A card saved in Stripe. We keep only Stripe's id and what the student needs to recognise it."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payment_methods")
    stripe_payment_method_id = models.CharField(max_length=255, unique=True)
    brand = models.CharField(max_length=30)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    objects = PaymentMethodQuerySet.as_manager()

    class Meta:
        ordering = ["-is_default", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(is_default=True, removed_at__isnull=True),
                name="payment_method_one_default_per_account",
            ),
            models.CheckConstraint(condition=Q(exp_month__gte=1, exp_month__lte=12), name="payment_method_exp_month"),
        ]

    def __str__(self):
        return self.label

    @property
    def label(self):
        """ "Visa 4242": how the card is named on buttons."""
        return f"{self.brand.replace('_', ' ').title()} {self.last4}"

    def expiry_state(self, today=None):
        """ "expired", "expires_soon" (this month or next) or "" for a card with time left."""
        today = today or timezone.localdate()
        months_left = (self.exp_year - today.year) * 12 + (self.exp_month - today.month)
        if months_left < 0:
            return "expired"
        if months_left <= 1:
            return "expires_soon"
        return ""


class Payment(models.Model):
    """One attempt to buy hours with a saved card. It exists before Stripe is called, so a crash or a
    time-out between the two leaves a row that can be settled later, and a repeated click finds it."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", "Purchase"
        RENEWAL = "renewal", "Renewal"
        TOP_UP = "top_up", "Top-up"

    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        REQUIRES_ACTION = "requires_action", "Needs authentication"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payments")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    renewed_lot = models.ForeignKey(Lot, on_delete=models.PROTECT, null=True, blank=True, related_name="renewals")
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    minutes = models.PositiveIntegerField()
    validity_days = models.PositiveIntegerField()
    payment_method = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="payments")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROCESSING)
    idempotency_key = models.CharField(max_length=64, unique=True)
    stripe_payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    lot = models.OneToOneField(Lot, on_delete=models.PROTECT, null=True, blank=True, related_name="payment")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "status"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["updated_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=~Q(status="succeeded") | Q(lot__isnull=False), name="payment_succeeded_has_lot"
            ),
        ]

    def __str__(self):
        return f"Payment {self.pk} ({self.get_status_display()})"


class Refund(models.Model):
    """Money given back on a payment, and the hours taken back for it (at most once per refund)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    stripe_refund_id = models.CharField(max_length=255, unique=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=30)
    minutes_reversed = models.PositiveIntegerField(default=0)
    minutes_short = models.PositiveIntegerField(default=0, help_text="Hours already used, so not taken back.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Refund {self.stripe_refund_id}"


class Dispute(models.Model):
    """A chargeback on a payment. While its funds are withdrawn, the lot's unused hours are held."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=60, blank=True)
    status = models.CharField(max_length=40)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    minutes_held = models.PositiveIntegerField(default=0)
    minutes_short = models.PositiveIntegerField(default=0, help_text="Hours already used when the funds left.")
    funds_withdrawn = models.BooleanField(default=False)
    closed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "evidence_due_by"])]

    def __str__(self):
        return f"Dispute {self.stripe_dispute_id} ({self.status})"


class FraudFlag(models.Model):
    """A warning that a payment may be fraudulent (Stripe's early fraud warnings, our own rules)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLEARED = "cleared", "Cleared"
        CONFIRMED = "confirmed", "Confirmed"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="fraud_flags")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="fraud_flags")
    stripe_warning_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    fraud_type = models.CharField(max_length=60)
    actionable = models.BooleanField(default=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Fraud flag {self.pk} ({self.status})"


class WebhookEvent(models.Model):
    """One Stripe event as it reached us, and what processing it did."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        WAITING = "waiting", "Waiting for its object"
        ORPHAN = "orphan", "Orphan"
        IGNORED = "ignored", "Ignored"

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        POLL = "poll", "Fetched from Stripe"

    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=40, blank=True)
    payload = models.JSONField()
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
        indexes = [models.Index(fields=["status", "next_attempt_at"]), models.Index(fields=["type", "-received_at"])]

    def __str__(self):
        return f"{self.type} {self.stripe_event_id} ({self.status})"


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
    """An immutable document for a payment (a receipt) or a refund (a credit note).

    `snapshot` holds everything the document states, frozen when it was issued; the PDF is rendered
    from it once and stored. The number never changes, whatever happens to the PDF.
    """

    class Kind(models.TextChoices):
        RECEIPT = "receipt", "Receipt"
        CREDIT_NOTE = "credit_note", "Credit note"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    number = models.CharField(max_length=30, unique=True)
    year = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField()
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="receipts")
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="receipt")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_note")
    corrects = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_notes")
    issued_at = models.DateTimeField()
    snapshot = models.JSONField()
    pdf = models.FileField(upload_to="receipts/", blank=True)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        indexes = [models.Index(fields=["account", "-issued_at"])]
        constraints = [
            models.UniqueConstraint(fields=["kind", "year", "sequence"], name="receipt_number_once_per_series"),
            models.CheckConstraint(
                condition=Q(kind="receipt", payment__isnull=False, refund__isnull=True)
                | Q(kind="credit_note", refund__isnull=False, payment__isnull=True),
                name="receipt_belongs_to_a_payment_or_a_refund",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.number}"

    @property
    def filename(self):
        prefix = "credit-note" if self.kind == self.Kind.CREDIT_NOTE else "receipt"
        return f"{prefix}-{self.number}.pdf"
