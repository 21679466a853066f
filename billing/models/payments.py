"""Money: saved cards, payments, and what can follow a payment (refunds, disputes, fraud flags)."""

from enum import StrEnum

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models.hours import Account, Lot, Plan


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


class PaymentStatus(models.TextChoices):
    # Outside Payment so that its Meta's constraints can name a status too.
    PROCESSING = "processing", _("Processing")
    REQUIRES_ACTION = "requires_action", _("Needs authentication")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    # Stripe's answer contradicts ours (another amount charged), or no answer can be had: no hours,
    # and staff find it in the console. Only Stripe's late word that it charged still moves it (see
    # Payment.final).
    NEEDS_REVIEW = "needs_review", _("Needs staff review")
    # Staff looked into it and recorded what they did (a refund, hours added by hand...) and why.
    RESOLVED = "resolved", _("Resolved by staff")


class PaymentFailure(StrEnum):
    """Our own codes in `Payment.failure_code`; Stripe's decline codes are stored as Stripe sends them."""

    NOT_CHARGED = "not_charged"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    REFUSED = "refused"
    CARD_NOT_FOUND = "card_not_found"
    # Cancelled before the student's bank confirmed it (a new click, a block, an abandoned check):
    # not a decline, and no news to the student.
    CANCELED = "canceled"
    # Left for staff (needs review):
    AMOUNT_MISMATCH = "amount_mismatch"
    INTENT_NOT_FOUND = "intent_not_found"
    CANCEL_REFUSED = "cancel_refused"


class Payment(models.Model):
    """One attempt to buy hours with a saved card. It exists before Stripe is called, so a crash or a
    time-out between the two leaves a row that can be settled later, and a repeated click finds it."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", _("Purchase")
        RENEWAL = "renewal", _("Renewal")
        TOP_UP = "top_up", _("Top-up")
        # Bought by the student's automatic top-up (billing.topups), without them on the page.
        AUTO_TOP_UP = "auto_top_up", _("Automatic top-up")
        # A subscription invoice: one period's hours, or an upgrade's pro-rata extra hours.
        SUBSCRIPTION = "subscription", _("Subscription period")
        PLAN_CHANGE = "plan_change", _("Plan upgrade")

    Status = PaymentStatus
    Failure = PaymentFailure
    # Started and not yet settled either way: the answer (or the 3-D Secure check) is awaited.
    IN_FLIGHT = frozenset({Status.PROCESSING, Status.REQUIRES_ACTION})
    # No answer, refresh or webhook from Stripe moves these any more (a failed payment still moves:
    # a late success credits it); only staff do. See `final` for a payment left for review.
    FINAL = frozenset({Status.SUCCEEDED, Status.RESOLVED})

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payments")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    renewed_lot = models.ForeignKey(Lot, on_delete=models.PROTECT, null=True, blank=True, related_name="renewals")
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    minutes = models.PositiveIntegerField()
    validity_days = models.PositiveIntegerField()
    # Empty only for a subscription invoice paid with a card we do not know (Stripe's Dashboard).
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, null=True, blank=True, related_name="payments"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROCESSING)
    idempotency_key = models.CharField(max_length=64, unique=True)
    stripe_payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    # What Stripe charged when it was not what we asked (amount_mismatch): what a refund gives back.
    stripe_amount_cents = models.PositiveIntegerField(null=True, blank=True)
    stripe_currency = models.CharField(max_length=3, blank=True)
    lot = models.OneToOneField(Lot, on_delete=models.PROTECT, null=True, blank=True, related_name="payment")
    # Subscription invoices only: the invoice (one payment per invoice, so its hours are credited
    # once), the period it pays for, and the lot it makes: named after the plan and the period,
    # expiring `rollover_periods` after it.
    subscription = models.ForeignKey(
        "billing.Subscription", on_delete=models.PROTECT, null=True, blank=True, related_name="payments"
    )
    stripe_invoice_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    lot_name = models.CharField(max_length=80, blank=True)
    lot_expires_at = models.DateTimeField(null=True, blank=True)
    # Finance's one retry of a payment that failed without a decline (a processing error, Stripe
    # unreachable): the retry is a payment of its own, made at most once per failed payment.
    retry_of = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="retry")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    # Not stored: payment_start sets it when a repeated click found the payment it had made.
    replayed = False
    # Not stored: payment_start sets it when it hands back another payment waiting for 3-D Secure
    # instead of the one clicked.
    handed_back = False

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "status"]),
            models.Index(fields=["account", "-created_at"]),  # a student's history, the fraud rules
            models.Index(fields=["updated_at"]),
            # The console's table, newest first, and the page after a payment (its key: created_at, id).
            models.Index(fields=["-created_at", "-id"], name="payment_newest_first"),
            # The table filtered by status, newest first; the overview's figures of the last 30 days
            # and the payments in flight. Amount and decline code are in the key so that the database
            # reads all of these from the index alone (a key rather than INCLUDE: SQLite has no INCLUDE).
            models.Index(
                fields=["status", "-created_at", "-id", "amount_cents", "failure_code"],
                name="payment_status_newest_first",
            ),
            # The table sorted by amount or by status, paged by (amount, id) or (status, id).
            models.Index(fields=["amount_cents", "id"], name="payment_by_amount"),
            models.Index(fields=["status", "id"], name="payment_by_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=~Q(status=PaymentStatus.SUCCEEDED) | Q(lot__isnull=False), name="payment_succeeded_has_lot"
            ),
        ]

    def __str__(self):
        return f"Payment {self.pk} ({self.get_status_display()})"

    @property
    def for_subscription(self):
        return self.subscription_id is not None

    @property
    def final(self):
        """Whether Stripe's word no longer moves it. A payment left for review because Stripe charged
        another amount is final; one left because no answer could be had (intent_not_found,
        cancel_refused) is not: Stripe may yet say it charged it, and that money must be recorded."""
        if self.status == PaymentStatus.NEEDS_REVIEW:
            return self.failure_code == PaymentFailure.AMOUNT_MISMATCH
        return self.status in self.FINAL

    @property
    def charged(self):
        """Whether Stripe took money for it: a success, or another amount than ours (left to staff)."""
        return self.status == PaymentStatus.SUCCEEDED or self.stripe_amount_cents is not None

    @property
    def charged_cents(self):
        return self.amount_cents if self.stripe_amount_cents is None else self.stripe_amount_cents

    @property
    def charged_currency(self):
        return self.stripe_currency or self.currency


class Refund(models.Model):
    """Money given back on a payment, and the hours taken back for it (at most once per refund)."""

    class Status(models.TextChoices):
        # Ours: a refund staff ask for exists before Stripe is called (like a Payment), so that a
        # second refund racing it counts its amount, and a lost answer can be sent again.
        REQUESTED = "requested", _("Waiting for Stripe")
        # Stripe's own.
        PENDING = "pending", _("Pending")
        REQUIRES_ACTION = "requires_action", _("Needs action")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELED = "canceled", _("Canceled")

        def may_become(self, new):
            """Whether a refund in this status takes `new`, which Stripe reports (its answer, a
            webhook, a listing) in any order and more than once. A refund only moves forward, as
            STATUS_ORDER ranks them; a status ranked no higher is a late or repeated snapshot and
            is ignored. Succeeded -> failed is a real move (the card's bank sent the money back);
            failed and canceled are final (save a failure of our own, see refunds.refund_record)."""
            return Refund.STATUS_ORDER[new] > Refund.STATUS_ORDER[self]

    # A refund's life: ours (requested) until Stripe has it; requires_action (the customer must act)
    # before pending; succeeded, which can still fail; failed or canceled, which end it.
    STATUS_ORDER = {
        Status.REQUESTED: 0,
        Status.REQUIRES_ACTION: 1,
        Status.PENDING: 2,
        Status.SUCCEEDED: 3,
        Status.FAILED: 4,
        Status.CANCELED: 4,
    }
    # The money is (or is on its way) back: the refund's hours are taken.
    APPLIED = frozenset({Status.SUCCEEDED, Status.PENDING})
    # Final, and no money went back: hours taken for it are given back.
    UNDONE = frozenset({Status.FAILED, Status.CANCELED})

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    stripe_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    idempotency_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=30, choices=Status.choices)
    minutes_requested = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Hours staff chose to take back; empty means the refund's pro-rata share.")
    )
    minutes_reversed = models.PositiveIntegerField(default=0)
    minutes_short = models.PositiveIntegerField(default=0, help_text=_("Hours already used, so not taken back."))
    reason = models.CharField(max_length=300, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Set while one of our requests for this refund is on its way to Stripe: whoever sends it (the
    # console, staff's "send again", the reconciliation job) claims it first, so two never both
    # ask. Stripe's idempotency key would catch a second request, but localstripe ignores keys.
    sending_since = models.DateTimeField(null=True, blank=True)
    # Why we failed a refund ourselves (Stripe refused our request, or it was left for staff unsent):
    # not Stripe's word, so Stripe's own status for it still overrides that failure.
    failure_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Not stored: what refunds.refund_send did with it (a refunds.SendOutcome), for staff to read.
    send_outcome = None

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount_cents__gt=0), name="refund_amount_positive")]

    def __str__(self):
        return f"Refund {self.stripe_refund_id or self.pk} of payment {self.payment_id}"


class Dispute(models.Model):
    """A chargeback on a payment. While its funds are withdrawn, the lot's unused hours are held."""

    class Status(models.TextChoices):
        # Stripe's: "warning_" ones are inquiries (no money has moved yet).
        WARNING_NEEDS_RESPONSE = "warning_needs_response", _("Inquiry: needs response")
        WARNING_UNDER_REVIEW = "warning_under_review", _("Inquiry: under review")
        WARNING_CLOSED = "warning_closed", _("Inquiry: closed")
        NEEDS_RESPONSE = "needs_response", _("Needs response")
        UNDER_REVIEW = "under_review", _("Under review")
        WON = "won", pgettext_lazy("dispute status", "Won")
        LOST = "lost", pgettext_lazy("dispute status", "Lost")

    # Stripe waits for our response (evidence, or an acceptance) only in these.
    AWAITING_RESPONSE = frozenset({Status.WARNING_NEEDS_RESPONSE, Status.NEEDS_RESPONSE})
    # Stripe is reviewing evidence (submitted here or in its Dashboard).
    IN_REVIEW = frozenset({Status.WARNING_UNDER_REVIEW, Status.UNDER_REVIEW})
    CLOSED = frozenset({Status.WON, Status.LOST, Status.WARNING_CLOSED})

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=60, blank=True)
    status = models.CharField(max_length=40, choices=Status.choices)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    minutes_held = models.PositiveIntegerField(default=0)
    minutes_short = models.PositiveIntegerField(default=0, help_text=_("Hours already used when the funds left."))
    funds_withdrawn = models.BooleanField(default=False)
    closed = models.BooleanField(default=False)
    # Evidence staff prepare in the console: Stripe's field names, text as typed; a draft until
    # submitted (Stripe accepts one submission).
    evidence = models.JSONField(default=dict, blank=True)
    evidence_saved_at = models.DateTimeField(null=True, blank=True)
    evidence_submitted_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "evidence_due_by"])]

    def __str__(self):
        return f"Dispute {self.stripe_dispute_id} ({self.status})"


class CardSetup(models.Model):
    """A SetupIntent we created for an account's card form: each lets the browser try a card with
    Stripe, so their number per day is a fraud signal (billing.fraud.rules) even when no card is saved."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="card_setups")
    stripe_setup_intent_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["account", "created_at"])]

    def __str__(self):
        return self.stripe_setup_intent_id


class FraudFlag(models.Model):
    """A warning that a payment may be fraudulent (Stripe's early fraud warnings, our own rules)."""

    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("fraud flag status", "Open")
        CLEARED = "cleared", pgettext_lazy("fraud flag status", "Cleared")
        CONFIRMED = "confirmed", pgettext_lazy("fraud flag status", "Confirmed")

    class Rule(models.TextChoices):
        RADAR = "radar", _("Stripe early fraud warning")
        ATTEMPTS = "attempts", _("Many payment attempts in an hour")
        CARDS = "cards", _("Many different cards in 24 hours")
        DECLINES = "declines", _("A streak of declines")
        FIRST_PURCHASE = "first_purchase", _("First purchase far above the usual")
        CARD_SETUPS = "card_setups", _("Many card setups in 24 hours")

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="fraud_flags")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="fraud_flags")
    rule = models.CharField(max_length=20, choices=Rule.choices, default=Rule.RADAR)
    # One flag per rule and subject and period (e.g. attempts:<account>:<hour>), so a rule that
    # keeps matching does not fill the queue.
    dedupe_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    evidence = models.JSONField(default=dict, blank=True)
    stripe_warning_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    fraud_type = models.CharField(max_length=60)
    actionable = models.BooleanField(default=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self):
        return f"Fraud flag {self.pk} ({self.status})"
