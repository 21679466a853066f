"""Hours: accounts, plans, lots, the ledger and recorded sessions.

Hours are integer minutes (a 50-minute session is exact, 0.83 h is not); money is integer cents
plus an ISO currency. Only billing.ledger writes lot remainders, ledger entries and the cached
balance.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def default_currency():
    return settings.PORTAL_CURRENCY


def price_per_hour_cents(price_cents, minutes):
    """The price of one hour in whole cents, rounded half up."""
    return (price_cents * 60 + minutes // 2) // minutes


def share_of_minutes(minutes, *, part_cents, whole_cents):
    """The minutes that `part_cents` of a `whole_cents` purchase of `minutes` stand for (half up):
    what a refund or a dispute of that amount takes back."""
    return (minutes * part_cents + whole_cents // 2) // whole_cents


def default_low_balance_minutes():
    return settings.PORTAL_LOW_BALANCE_MINUTES


class Account(models.Model):
    """A student's hours account. `balance_minutes` caches the sum of its ledger entries."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="account")
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    balance_minutes = models.IntegerField(default=0)
    low_balance_threshold_minutes = models.PositiveIntegerField(default=default_low_balance_minutes)
    # Set by finance after a confirmed fraud flag: the student can no longer buy hours.
    blocked_at = models.DateTimeField(null=True, blank=True)
    blocked_reason = models.CharField(max_length=300, blank=True)
    # Printed on receipts issued from then on (an issued receipt keeps what it was issued with).
    billing_address = models.TextField(max_length=300, blank=True)
    tax_id = models.CharField(_("tax number (NIF)"), max_length=20, blank=True)
    # Opted in on the account page: last month's statement by email on the first of each month.
    statement_emails = models.BooleanField(_("email me my monthly statement"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped (billing.versions) in the same transaction as any change to what the student's pages
    # show: the key of their cached fragments and the ETag of their live updates.
    version = models.PositiveBigIntegerField(default=0)

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
    """Hours for sale: a package (bought once, valid for `validity_days`) or a subscription (N hours
    every period for a price per period, billed by Stripe Billing)."""

    class Kind(models.TextChoices):
        PACKAGE = "package", _("Package")
        SUBSCRIPTION = "subscription", _("Subscription")

    class Interval(models.TextChoices):
        MONTH = "month", _("Monthly")
        WEEK = "week", _("Weekly")

    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PACKAGE)
    description = models.CharField(max_length=200, blank=True)
    minutes = models.PositiveIntegerField(help_text=_("Hours in the package, in minutes."))
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default=default_currency)
    validity_days = models.PositiveIntegerField(
        default=365, help_text=_("Packages: days from purchase until unused hours expire.")
    )
    # Subscriptions only: the period each payment pays for, and how many periods after it a period's
    # unused hours stay usable (1: they expire at the end of the next period).
    interval = models.CharField(max_length=10, choices=Interval.choices, blank=True)
    rollover_periods = models.PositiveSmallIntegerField(default=1)
    # The Stripe Product and Price of a subscription plan (billing.subscriptions.plan_price_ensure),
    # and the terms that price was made for: other terms (a new price) make a new Price.
    stripe_product_id = models.CharField(max_length=255, blank=True)
    stripe_price_id = models.CharField(max_length=255, blank=True)
    stripe_price_terms = models.CharField(max_length=60, blank=True)
    is_active = models.BooleanField(default=True)
    is_featured = models.BooleanField(default=False)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "minutes"]
        constraints = [
            models.CheckConstraint(condition=Q(minutes__gt=0), name="plan_minutes_positive"),
            models.CheckConstraint(condition=Q(price_cents__gt=0), name="plan_price_positive"),
            models.CheckConstraint(condition=Q(validity_days__gt=0), name="plan_validity_positive"),
            models.CheckConstraint(
                condition=Q(kind="package", interval="") | (Q(kind="subscription") & ~Q(interval="")),
                name="plan_interval_only_for_subscriptions",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def price_per_hour_cents(self):
        return price_per_hour_cents(self.price_cents, self.minutes)

    @property
    def is_subscription(self):
        return self.kind == self.Kind.SUBSCRIPTION

    @property
    def price_terms(self):
        """What a Stripe Price stands for: amount, currency and period. Another one needs a new Price."""
        return f"{self.price_cents} {self.currency} {self.interval}"


class LotQuerySet(models.QuerySet):
    def usable(self, at):
        """Lots whose hours could be drawn on at `at`: bought by then, not yet expired (Lot.is_usable
        says the same of one lot in Python)."""
        return self.filter(expired_at__isnull=True, minutes_remaining__gt=0, purchased_at__lte=at, expires_at__gt=at)

    def minutes_available(self, at):
        return self.usable(at).aggregate(total=models.Sum("minutes_remaining"))["total"] or 0


class Lot(models.Model):
    """One purchased (or granted) package of hours with its own expiry."""

    class Source(models.TextChoices):
        PURCHASE = "purchase", _("Purchase")
        # A complimentary lot from staff: no payment, no receipt, counted apart from sales.
        GRANT = "grant", _("Granted by your school")
        # A voided session's minutes whose own lot had expired since come back in a lot of their own.
        RESTORED = "restored", _("Restored from a voided session")

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="lots", null=True, blank=True)
    name = models.CharField(max_length=80, help_text=_("What the student sees: the plan's name at purchase."))
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.PURCHASE)
    minutes_purchased = models.PositiveIntegerField()
    minutes_remaining = models.PositiveIntegerField()
    price_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default=default_currency)
    purchased_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    expired_at = models.DateTimeField(null=True, blank=True, help_text=_("When the expiry was booked."))

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

    def is_usable(self, at):
        return not self.is_expired(at) and self.minutes_remaining > 0 and self.purchased_at <= at


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
    # A session recorded by mistake is voided, never deleted: its minutes go back through the
    # ledger and it stays in both histories, marked voided with the reason.
    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    void_reason = models.CharField(max_length=300, blank=True)

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


class LedgerEntryKind(models.TextChoices):
    # Outside LedgerEntry so that its Meta's constraints can name the kinds.
    CREDIT = "credit", _("Purchase")
    USAGE = "usage", _("Session")
    EXPIRY = "expiry", _("Expiry")
    REVERSAL = "reversal", _("Reversal")
    ADJUSTMENT = "adjustment", _("Adjustment")
    DISPUTE_HOLD = "dispute_hold", _("Held for a dispute")
    DISPUTE_RELEASE = "dispute_release", _("Released after a dispute")
    GRANT = "grant", _("Granted by your school")
    # An expired lot reopened by staff: the expiry's minutes come back, the expiry entry stays.
    EXPIRY_REVERSAL = "expiry_reversal", _("Expiry reopened")
    VOID = "void", _("Session voided")


class LedgerEntry(models.Model):
    """One append-only change to the hours of one lot. The balance is the sum of these."""

    Kind = LedgerEntryKind

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries")
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    minutes = models.IntegerField(help_text=_("Signed change: positive adds hours, negative removes them."))
    balance_after = models.IntegerField(help_text=_("The account's balance in minutes right after this entry."))
    usage = models.ForeignKey(Usage, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries")
    reason = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    occurred_at = models.DateTimeField(help_text=_("When it happened in the business sense."))
    recorded_at = models.DateTimeField(auto_now_add=True)

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = _("ledger entries")
        indexes = [models.Index(fields=["account", "id"]), models.Index(fields=["kind", "occurred_at"])]
        constraints = [
            models.CheckConstraint(condition=~Q(minutes=0), name="ledger_entry_minutes_not_zero"),
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        LedgerEntryKind.CREDIT,
                        LedgerEntryKind.DISPUTE_RELEASE,
                        LedgerEntryKind.GRANT,
                        LedgerEntryKind.EXPIRY_REVERSAL,
                        LedgerEntryKind.VOID,
                    ],
                    minutes__gt=0,
                )
                | Q(
                    kind__in=[
                        LedgerEntryKind.USAGE,
                        LedgerEntryKind.EXPIRY,
                        LedgerEntryKind.REVERSAL,
                        LedgerEntryKind.DISPUTE_HOLD,
                    ],
                    minutes__lt=0,
                )
                | Q(kind=LedgerEntryKind.ADJUSTMENT),
                name="ledger_entry_sign_matches_kind",
            ),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_entry_balance_not_negative"),
            # One expiry per lot and expiry date: a reopened lot expires again only at a later date.
            models.UniqueConstraint(
                fields=["lot", "occurred_at"],
                condition=Q(kind=LedgerEntryKind.EXPIRY),
                name="ledger_entry_one_expiry_per_lot_date",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=[LedgerEntryKind.USAGE, LedgerEntryKind.VOID], usage__isnull=False)
                | (~Q(kind__in=[LedgerEntryKind.USAGE, LedgerEntryKind.VOID]) & Q(usage__isnull=True)),
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
