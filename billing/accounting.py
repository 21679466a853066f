"""Accounting exports: what the school's accountant reconciles for a period, as rows to stream (sales,
refunds, receipts, credit notes, disputes, ledger movements, the lots' deferred revenue at the end)
and a summary per calendar month of money and hours.

A period is whole days in the school's time zone (settings.TIME_ZONE), from its first day 00:00
(included) to the day after its last 00:00 (excluded), at most PERIOD_YEARS_MAX years. Money counts
as the console's overview counts it (billing.reports.SALE and REFUND_COUNTED), so the same window
gives the same revenue. Hours are read from the ledger alone, by when each movement happened
(occurred_at): the minutes outstanding at a month's end are the sum of every ledger entry before
it, which is what the accounts' balances add up to when that end is now.

Every export reads its rows with `.values(...).iterator()` in one query, however many rows the
period holds; the summary costs five queries and one more per month (its deferred revenue).
"""

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Case, IntegerField, Q, Sum, TextChoices, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from billing.audit import audit_record_bulk
from billing.errors import BillingError
from billing.formatting import date_text, hours_input, iso_date, iso_datetime, money_input
from billing.models import Dispute, LedgerEntry, Payment, Receipt, Refund
from billing.reports import REFUND_COUNTED, SALE
from billing.statements import FIRST_DAY, LAST_DAY, RANGE_OUT_OF_BOUNDS

PERIOD_YEARS_MAX = 2
CHUNK_ROWS = 2000
AUDIT_ACTION = "accounting.export"

# In English (tests name them); translated where they are raised.
PERIOD_BACKWARDS = gettext_noop("The period must end on or after the day it starts.")
PERIOD_TOO_LONG = gettext_noop("An export covers at most %(years)d years. Choose a shorter period.")


class AccountingPeriodInvalid(BillingError):
    """A period no export can cover (ending before it starts, longer than PERIOD_YEARS_MAX years,
    outside the years the portal keeps); nothing was read."""


class ExportKind(TextChoices):
    PAYMENTS = "payments", gettext_lazy("Payments")
    REFUNDS = "refunds", gettext_lazy("Refunds")
    RECEIPTS = "receipts", gettext_lazy("Receipts")
    CREDIT_NOTES = "credit_notes", gettext_lazy("Credit notes")
    DISPUTES = "disputes", gettext_lazy("Disputes")
    LEDGER = "ledger", gettext_lazy("Ledger movements")
    DEFERRED = "deferred", gettext_lazy("Deferred revenue")
    SUMMARY = "summary", gettext_lazy("Monthly summary")


# Each kind of ledger entry counts in one column of the summary, with the sign that makes every
# column of a month add up: outstanding = opening + sold + granted - used - expired - refunded -
# disputed + adjusted. A column nets a movement with its undoing: a voided session gives its
# minutes back to "used", a reopened expiry to "expired", a released dispute hold to "disputed".
MOVEMENT_COLUMNS = {
    LedgerEntry.Kind.CREDIT: ("sold_minutes", 1),
    LedgerEntry.Kind.GRANT: ("granted_minutes", 1),
    LedgerEntry.Kind.USAGE: ("used_minutes", -1),
    LedgerEntry.Kind.VOID: ("used_minutes", -1),
    LedgerEntry.Kind.EXPIRY: ("expired_minutes", -1),
    LedgerEntry.Kind.EXPIRY_REVERSAL: ("expired_minutes", -1),
    LedgerEntry.Kind.REVERSAL: ("refunded_minutes", -1),
    LedgerEntry.Kind.DISPUTE_HOLD: ("disputed_minutes", -1),
    LedgerEntry.Kind.DISPUTE_RELEASE: ("disputed_minutes", -1),
    LedgerEntry.Kind.ADJUSTMENT: ("adjusted_minutes", 1),
}


@dataclass(frozen=True)
class Days:
    """Whole days in the school's time zone: from `start` (included) to `end` (excluded)."""

    start: date
    end: date

    @property
    def last_day(self):
        return self.end - timedelta(days=1)

    @property
    def is_calendar_month(self):
        return self.start.day == 1 and self.end == _month_after(self.start)


@dataclass(frozen=True)
class AccountingPeriod(Days):
    """The days an export covers."""

    @property
    def starts_at(self):
        return _midnight(self.start)

    @property
    def ends_at(self):
        return _midnight(self.end)

    @property
    def name(self):
        """2026-11 for a calendar month, 2026-01-to-2026-03 for whole months, else the first and the
        last day (2026-11-03-to-2026-12-02): what file names and the audit log call it."""
        if self.is_calendar_month:
            return _month_name(self.start)
        if self.start.day == 1 and self.end.day == 1:
            return f"{_month_name(self.start)}-to-{_month_name(self.last_day)}"
        return f"{self.start.isoformat()}-to-{self.last_day.isoformat()}"

    def months(self):
        """The calendar months the period touches, each cut to the period: (start, end) pairs."""
        start = self.start
        while start < self.end:
            following = _month_after(start)
            yield start, min(following, self.end)
            start = following


def accounting_period(*, first_day, last_day):
    """The period of the days from `first_day` to `last_day`, both included. Raises
    AccountingPeriodInvalid, with a message to show, for one no export may cover."""
    _years_check(first_day, last_day)
    if last_day < first_day:
        raise AccountingPeriodInvalid(_(PERIOD_BACKWARDS))
    end = last_day + timedelta(days=1)
    if (end.year, end.month, end.day) > (first_day.year + PERIOD_YEARS_MAX, first_day.month, first_day.day):
        raise AccountingPeriodInvalid(_(PERIOD_TOO_LONG) % {"years": PERIOD_YEARS_MAX})
    return AccountingPeriod(start=first_day, end=end)


def accounting_month(day):
    """The calendar month `day` falls in."""
    first = day.replace(day=1)
    _years_check(first, first)  # before _month_after, which overflows past the year 9999
    return accounting_period(first_day=first, last_day=_month_after(first) - timedelta(days=1))


def _years_check(first_day, last_day):
    if first_day < FIRST_DAY or last_day > LAST_DAY:
        raise AccountingPeriodInvalid(
            _(RANGE_OUT_OF_BOUNDS) % {"first": date_text(FIRST_DAY), "last": date_text(LAST_DAY)}
        )


def accounting_period_default(*, today=None):
    """Last calendar month, in the school's time zone."""
    today = today or timezone.localdate(timezone=_zone())
    return accounting_month(today.replace(day=1) - timedelta(days=1))


# The summary.


@dataclass(frozen=True)
class MonthFigures(Days):
    """The money and hours of one calendar month (cut to the period at its ends), or of a whole
    period (AccountingSummary.total). Money in cents of `currency`, hours in minutes."""

    currency: str
    gross_sales_cents: int = 0
    refunds_cents: int = 0
    disputes_lost_cents: int = 0
    opening_minutes: int = 0
    sold_minutes: int = 0
    granted_minutes: int = 0
    used_minutes: int = 0
    expired_minutes: int = 0
    refunded_minutes: int = 0
    disputed_minutes: int = 0
    adjusted_minutes: int = 0
    outstanding_minutes: int = 0
    deferred_cents: int = 0

    @property
    def net_cents(self):
        return self.gross_sales_cents - self.refunds_cents - self.disputes_lost_cents


# What happens within a month (summed over months for a total), as opposed to what stands at its
# start (opening) or end (outstanding, deferred).
FLOW_FIGURES = (
    "gross_sales_cents",
    "refunds_cents",
    "disputes_lost_cents",
    "sold_minutes",
    "granted_minutes",
    "used_minutes",
    "expired_minutes",
    "refunded_minutes",
    "disputed_minutes",
    "adjusted_minutes",
)


@dataclass(frozen=True)
class AccountingSummary:
    period: AccountingPeriod
    months: tuple

    @property
    def total(self):
        """The whole period: its months' flows added up, the first month's opening, the last one's
        outstanding hours and deferred revenue."""
        first, last = self.months[0], self.months[-1]
        flows = {name: sum(getattr(month, name) for month in self.months) for name in FLOW_FIGURES}
        return replace(
            first,
            end=last.end,
            outstanding_minutes=last.outstanding_minutes,
            deferred_cents=last.deferred_cents,
            **flows,
        )


def accounting_summary(*, period):
    """The period's figures month by month (see MonthFigures and docs/deploy.md for what each counts)."""
    money = _money_by_month(period)
    movements, lot_movements = _ledger_by_month(period)
    lots = _LotsOutstanding(at=period.starts_at)
    months = []
    for month, (start, end) in enumerate(period.months()):
        moved = movements.get(month, {})
        figures = MonthFigures(
            start=start,
            end=end,
            currency=settings.PORTAL_CURRENCY,
            opening_minutes=lots.minutes,
            **money.get(month, {}),
            **{column: minutes for column, minutes in moved.items() if column != "total"},
        )
        lots.move(lot_movements.get(month, ()))
        months.append(replace(figures, outstanding_minutes=lots.minutes, deferred_cents=lots.deferred_cents))
    return AccountingSummary(period=period, months=tuple(months))


def _money_by_month(period):
    """{month's number (see _per_month): {figure: cents}} of the money figures, one query each."""
    sources = {
        "gross_sales_cents": (Payment.objects.filter(SALE), "created_at"),
        "refunds_cents": (Refund.objects.filter(REFUND_COUNTED), "created_at"),
        # A closed dispute never changes again, so its last change is when it was decided.
        "disputes_lost_cents": (Dispute.objects.filter(status=Dispute.Status.LOST, closed=True), "updated_at"),
    }
    by_month = {}
    for figure, (rows, moment) in sources.items():
        in_period = rows.filter(**{f"{moment}__gte": period.starts_at, f"{moment}__lt": period.ends_at})
        for month, cents in (
            _per_month(in_period, moment, period).annotate(cents=Sum("amount_cents")).values_list("month", "cents")
        ):
            by_month.setdefault(month, {})[figure] = cents
    return by_month


def _ledger_by_month(period):
    """The period's ledger movements, in one query grouped by month, lot and kind: {month's number
    (see _per_month): {summary column: minutes, "total": signed sum}}, and {month's number: [(lot id,
    price in cents, minutes bought, its kind's minutes)]} for the summary to move its lots by."""
    entries = LedgerEntry.objects.filter(occurred_at__gte=period.starts_at, occurred_at__lt=period.ends_at)
    rows = (
        _per_month(entries, "occurred_at", period)
        # Lot before kind: SQLite then groups along the lot index, three times faster than along kind's.
        .values("month", "lot_id", "kind", *LOT_TERMS)
        .annotate(minutes=Sum("minutes"))
        .order_by()
        .values_list("month", "kind", "lot_id", *LOT_TERMS, "minutes")
    )
    movements, lot_movements = {}, {}
    for month, kind, *lot_movement in rows.iterator(chunk_size=CHUNK_ROWS):
        minutes = lot_movement[-1]
        column, sign = MOVEMENT_COLUMNS[kind]
        moved = movements.setdefault(month, {})
        moved[column] = moved.get(column, 0) + sign * minutes
        moved["total"] = moved.get("total", 0) + minutes
        lot_movements.setdefault(month, []).append(lot_movement)
    return movements, lot_movements


def _per_month(rows, moment, period):
    """`rows` (within the period) grouped by the month their `moment` falls in, as `month`: its
    number in period.months(), from 0. The month is found by comparing the moment with each month's
    end (midnight in the school's zone): plain comparisons every database makes natively, where
    truncating to a month in a zone costs SQLite a call into Python per row, and a number needs no
    conversion as it is read (seconds, both, over a year of the ledger)."""
    month = Case(
        *(
            When(**{f"{moment}__lt": _midnight(end)}, then=Value(number))
            for number, (_start, end) in enumerate(period.months())
        ),
        output_field=IntegerField(),
    )
    return rows.annotate(month=month).values("month").order_by("month")


# Deferred revenue: the lots' outstanding minutes at a moment, at each lot's own price.


def deferred_cents(*, minutes_outstanding, price_cents, minutes_purchased):
    """What a lot's outstanding minutes are worth: its price per minute (price / minutes bought) times
    the minutes, rounded half up to a whole cent, once per lot. A lot untouched is worth exactly its
    price, an emptied one 0, a granted one (price 0) 0; a total is the sum of its lots' values, so the
    deferred revenue export adds up to the summary's figure to the cent."""
    return (minutes_outstanding * price_cents * 2 + minutes_purchased) // (minutes_purchased * 2)


def _lots_outstanding(moment, *columns):
    """Per lot with minutes outstanding at `moment` (the sum of its ledger entries before it, not
    zero): its id, `columns` and `outstanding`, in lot order."""
    return (
        LedgerEntry.objects.filter(occurred_at__lt=moment)
        .values("lot_id", *columns)
        .annotate(outstanding=Sum("minutes"))
        .exclude(outstanding=0)
        .order_by("lot_id")
    )


LOT_TERMS = ("lot__price_cents", "lot__minutes_purchased")


class _LotsOutstanding:
    """The lots' outstanding minutes and deferred revenue as the summary walks its months: read once,
    per lot, at the period's start, then moved by each month's net movement per lot, so that a long
    period costs no more queries than a month and never reads the ledger before it again. Each lot's
    value is rounded on its own (deferred_cents), so the total is kept as the sum of its lots' values,
    each replaced when its lot moves."""

    def __init__(self, *, at):
        self.outstanding, self.values, self.minutes, self.deferred_cents = {}, {}, 0, 0
        lots = _lots_outstanding(at, *LOT_TERMS).values_list("lot_id", *LOT_TERMS, "outstanding")
        self.move(lots.iterator(chunk_size=CHUNK_ROWS))

    def move(self, movements):
        """Move each lot by its minutes: (lot id, price in cents, minutes bought, minutes) tuples."""
        for lot, price_cents, minutes_purchased, minutes in movements:
            outstanding = self.outstanding.get(lot, 0) + minutes
            value = deferred_cents(
                minutes_outstanding=outstanding, price_cents=price_cents, minutes_purchased=minutes_purchased
            )
            self.minutes += minutes
            self.deferred_cents += value - self.values.get(lot, 0)
            self.outstanding[lot], self.values[lot] = outstanding, value


# The exports: each a header of field names (the same in every language, for spreadsheets and
# scripts), then one row per record. Money as a decimal number of units with two places (150.00) and
# its currency, minutes as integers, moments in ISO 8601 in the school's time zone.


def accounting_export(*, kind, period, actor, ip_address=None):
    """Record in the audit log that `actor` exports `kind` for `period`, and hand back its rows
    (header first) for the caller to stream."""
    _audit(kind, period, actor, ip_address)
    return accounting_rows(kind=kind, period=period)


def accounting_workbook(*, period, actor, ip_address=None):
    """Record in the audit log that `actor` exports every export of `period` at once, and hand back
    (sheet title, rows) pairs, summary first."""
    _audit("workbook", period, actor, ip_address)
    order = [ExportKind.SUMMARY, *(kind for kind in ExportKind if kind != ExportKind.SUMMARY)]
    return [(str(kind.label), accounting_rows(kind=kind, period=period)) for kind in order]


def accounting_rows(*, kind, period):
    """The rows of one export for `period`, header first, read as they are consumed."""
    return ROWS[kind](period)


def export_filename(kind, period, extension):
    """payments-2026-11.csv, credit-notes-2026-01-to-2026-03.csv, accounting-2026-11.xlsx ..."""
    return f"{kind.replace('_', '-')}-{period.name}.{extension}"


def _audit(export, period, actor, ip_address):
    audit_record_bulk(
        actor=actor,
        action=AUDIT_ACTION,
        target_type="accounting_period",
        label=period.name,
        after={"export": str(export), "from": iso_date(period.start), "to": iso_date(period.last_day)},
        ip_address=ip_address,
    )


def _payment_rows(period):
    yield [
        "payment_id",
        "created_at",
        "settled_at",
        "account_id",
        "email",
        "kind",
        "plan",
        "minutes",
        "amount",
        "currency",
        "status",
        "receipt",
        "payment_intent",
        "invoice",
    ]
    sales = Payment.objects.filter(SALE, **_within("created_at", period)).order_by("created_at", "id")
    for row in _read(
        sales,
        "id",
        "created_at",
        "settled_at",
        "account_id",
        "account__user__email",
        "kind",
        "plan__name",
        "minutes",
        "amount_cents",
        "currency",
        "status",
        "receipt__number",
        "stripe_payment_intent_id",
        "stripe_invoice_id",
    ):
        yield [
            row["id"],
            _when(row["created_at"]),
            _when(row["settled_at"]),
            row["account_id"],
            row["account__user__email"],
            row["kind"],
            row["plan__name"],
            row["minutes"],
            _amount(row["amount_cents"]),
            row["currency"],
            row["status"],
            row["receipt__number"] or "",
            row["stripe_payment_intent_id"] or "",
            row["stripe_invoice_id"] or "",
        ]


def _refund_rows(period):
    yield [
        "refund_id",
        "created_at",
        "account_id",
        "email",
        "payment_id",
        "receipt",
        "amount",
        "currency",
        "status",
        "minutes_reversed",
        "credit_note",
        "stripe_refund",
        "payment_intent",
        "reason",
    ]
    refunds = Refund.objects.filter(REFUND_COUNTED, **_within("created_at", period)).order_by("created_at", "id")
    for row in _read(
        refunds,
        "id",
        "created_at",
        "payment__account_id",
        "payment__account__user__email",
        "payment_id",
        "payment__receipt__number",
        "amount_cents",
        "currency",
        "status",
        "minutes_reversed",
        "credit_note__number",
        "stripe_refund_id",
        "payment__stripe_payment_intent_id",
        "reason",
    ):
        yield [
            row["id"],
            _when(row["created_at"]),
            row["payment__account_id"],
            row["payment__account__user__email"],
            row["payment_id"],
            row["payment__receipt__number"] or "",
            _amount(row["amount_cents"]),
            row["currency"],
            row["status"],
            row["minutes_reversed"],
            row["credit_note__number"] or "",
            row["stripe_refund_id"] or "",
            row["payment__stripe_payment_intent_id"] or "",
            row["reason"],
        ]


def _receipt_rows(period):
    """The receipts issued in the period, in their series' order. What a document states (student,
    amount) is read from its snapshot, as issued."""
    yield [
        "number",
        "issued_at",
        "account_id",
        "email",
        "student_name",
        "student_tax_id",
        "description",
        "minutes",
        "amount",
        "currency",
        "payment_id",
        "payment_intent",
    ]
    receipts = _documents(period, [Receipt.Kind.RECEIPT])
    for row in _read(receipts, "number", "issued_at", "account_id", "account__user__email", "payment_id", "snapshot"):
        doc = row["snapshot"]
        yield [
            row["number"],
            _when(row["issued_at"]),
            row["account_id"],
            row["account__user__email"],
            doc.get("student_name", ""),
            doc.get("student_tax_id", ""),
            doc.get("description", ""),
            doc.get("minutes", ""),
            _amount(doc["amount_cents"]),
            doc["currency"],
            row["payment_id"],
            doc.get("payment_intent", ""),
        ]


def _credit_note_rows(period):
    """The credit notes and their cancellations issued in the period: one series, in its order. A
    credit note's amount is what it gives back; a cancellation's is negative (that money did not go
    back after all), so the column adds up to what the period's documents refund."""
    yield [
        "number",
        "kind",
        "issued_at",
        "account_id",
        "email",
        "student_name",
        "student_tax_id",
        "corrects",
        "cancels",
        "amount",
        "currency",
        "stripe_refund",
        "payment_intent",
    ]
    notes = _documents(period, [Receipt.Kind.CREDIT_NOTE, Receipt.Kind.CANCELLATION])
    for row in _read(
        notes, "number", "kind", "issued_at", "account_id", "account__user__email", "cancels__number", "snapshot"
    ):
        doc = row["snapshot"]
        sign = -1 if row["kind"] == Receipt.Kind.CANCELLATION else 1
        yield [
            row["number"],
            row["kind"],
            _when(row["issued_at"]),
            row["account_id"],
            row["account__user__email"],
            doc.get("student_name", ""),
            doc.get("student_tax_id", ""),
            doc.get("corrects", ""),
            row["cancels__number"] or "",
            _amount(sign * doc["amount_cents"]),
            doc["currency"],
            doc.get("refund") or "",
            doc.get("payment_intent", ""),
        ]


def _dispute_rows(period):
    """Disputes opened in the period, and those closed in it (won, lost or an inquiry closed)."""
    yield [
        "dispute",
        "opened_at",
        "closed_at",
        "status",
        "account_id",
        "email",
        "payment_id",
        "receipt",
        "payment_intent",
        "amount",
        "currency",
        "reason",
        "minutes_held",
    ]
    opened = Q(**_within("created_at", period))
    closed = Q(closed=True, **_within("updated_at", period))
    disputes = Dispute.objects.filter(opened | closed).order_by("created_at", "id")
    for row in _read(
        disputes,
        "stripe_dispute_id",
        "created_at",
        "updated_at",
        "closed",
        "status",
        "payment__account_id",
        "payment__account__user__email",
        "payment_id",
        "payment__receipt__number",
        "payment__stripe_payment_intent_id",
        "amount_cents",
        "currency",
        "reason",
        "minutes_held",
    ):
        yield [
            row["stripe_dispute_id"],
            _when(row["created_at"]),
            _when(row["updated_at"]) if row["closed"] else "",
            row["status"],
            row["payment__account_id"],
            row["payment__account__user__email"],
            row["payment_id"],
            row["payment__receipt__number"] or "",
            row["payment__stripe_payment_intent_id"] or "",
            _amount(row["amount_cents"]),
            row["currency"],
            row["reason"],
            row["minutes_held"],
        ]


def _ledger_rows(period):
    """Every movement of hours that happened in the period, in the order it happened."""
    yield [
        "entry_id",
        "occurred_at",
        "recorded_at",
        "account_id",
        "email",
        "lot_id",
        "lot",
        "kind",
        "minutes",
        "hours",
        "balance_after",
        "session_id",
        "payment_id",
        "receipt",
        "reason",
    ]
    entries = LedgerEntry.objects.filter(**_within("occurred_at", period)).order_by("occurred_at", "id")
    for row in _read(
        entries,
        "id",
        "occurred_at",
        "recorded_at",
        "account_id",
        "account__user__email",
        "lot_id",
        "lot__name",
        "kind",
        "minutes",
        "balance_after",
        "usage_id",
        "lot__payment__id",
        "lot__payment__receipt__number",
        "reason",
    ):
        yield [
            row["id"],
            _when(row["occurred_at"]),
            _when(row["recorded_at"]),
            row["account_id"],
            row["account__user__email"],
            row["lot_id"],
            row["lot__name"],
            row["kind"],
            row["minutes"],
            _hours(row["minutes"]),
            row["balance_after"],
            row["usage_id"] or "",
            row["lot__payment__id"] or "",
            row["lot__payment__receipt__number"] or "",
            row["reason"],
        ]


def _deferred_rows(period):
    """Every lot with minutes outstanding at the end of the period and what they are worth (see
    deferred_cents): the minutes add up to the summary's outstanding minutes of the last month, the
    values to its deferred revenue."""
    yield [
        "lot_id",
        "account_id",
        "email",
        "lot",
        "source",
        "purchased_at",
        "expires_at",
        "price",
        "currency",
        "minutes_purchased",
        "minutes_outstanding",
        "hours_outstanding",
        "deferred_revenue",
        "receipt",
    ]
    lots = _lots_outstanding(
        period.ends_at,
        "lot__account_id",
        "lot__account__user__email",
        "lot__name",
        "lot__source",
        "lot__purchased_at",
        "lot__expires_at",
        "lot__price_cents",
        "lot__currency",
        "lot__minutes_purchased",
        "lot__payment__receipt__number",
    )
    for row in lots.iterator(chunk_size=CHUNK_ROWS):
        outstanding, price, bought = row["outstanding"], row["lot__price_cents"], row["lot__minutes_purchased"]
        yield [
            row["lot_id"],
            row["lot__account_id"],
            row["lot__account__user__email"],
            row["lot__name"],
            row["lot__source"],
            _when(row["lot__purchased_at"]),
            _when(row["lot__expires_at"]),
            _amount(price),
            row["lot__currency"],
            bought,
            outstanding,
            _hours(outstanding),
            _amount(deferred_cents(minutes_outstanding=outstanding, price_cents=price, minutes_purchased=bought)),
            row["lot__payment__receipt__number"] or "",
        ]


SUMMARY_COLUMNS = [
    "month",
    "first_day",
    "last_day",
    "currency",
    "gross_sales",
    "refunds",
    "disputes_lost",
    "net",
    "opening_minutes",
    "sold_minutes",
    "granted_minutes",
    "used_minutes",
    "expired_minutes",
    "refunded_minutes",
    "disputed_minutes",
    "adjusted_minutes",
    "outstanding_minutes",
    "outstanding_hours",
    "deferred_revenue",
]


def _summary_rows(period):
    yield SUMMARY_COLUMNS
    for month in accounting_summary(period=period).months:
        yield [
            _month_name(month.start),
            iso_date(month.start),
            iso_date(month.last_day),
            month.currency,
            _amount(month.gross_sales_cents),
            _amount(month.refunds_cents),
            _amount(month.disputes_lost_cents),
            _amount(month.net_cents),
            month.opening_minutes,
            month.sold_minutes,
            month.granted_minutes,
            month.used_minutes,
            month.expired_minutes,
            month.refunded_minutes,
            month.disputed_minutes,
            month.adjusted_minutes,
            month.outstanding_minutes,
            _hours(month.outstanding_minutes),
            _amount(month.deferred_cents),
        ]


ROWS = {
    ExportKind.PAYMENTS: _payment_rows,
    ExportKind.REFUNDS: _refund_rows,
    ExportKind.RECEIPTS: _receipt_rows,
    ExportKind.CREDIT_NOTES: _credit_note_rows,
    ExportKind.DISPUTES: _dispute_rows,
    ExportKind.LEDGER: _ledger_rows,
    ExportKind.DEFERRED: _deferred_rows,
    ExportKind.SUMMARY: _summary_rows,
}


def _read(rows, *columns):
    return rows.values(*columns).iterator(chunk_size=CHUNK_ROWS)


def _within(moment, period):
    return {f"{moment}__gte": period.starts_at, f"{moment}__lt": period.ends_at}


def _documents(period, kinds):
    return Receipt.objects.filter(kind__in=kinds, **_within("issued_at", period)).order_by("year", "sequence")


def _amount(cents):
    """Cents as a number of units with two places: 150.00 in a CSV, a number in a spreadsheet."""
    return Decimal(money_input(cents))


def _hours(minutes):
    return Decimal(hours_input(minutes))


def _when(moment):
    """In the school's time zone, passed rather than activated: the rows are read while the response
    streams, outside any block the view could open."""
    return iso_datetime(moment, _zone()) if moment else ""


def _zone():
    return timezone.get_default_timezone()


def _midnight(day):
    """00:00 of `day` in the school's time zone."""
    return datetime(day.year, day.month, day.day, tzinfo=_zone())


def _month_after(day):
    """The first day of the month after `day`'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _month_name(day):
    return f"{day.year:04d}-{day.month:02d}"
