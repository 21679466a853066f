"""Statements of account: a student's hours over a range of days, read from the ledger, as a PDF
(the receipts' look) or CSV rows, and the monthly email that carries last month's.

A statement reconciles by construction: its opening balance is the sum of the account's ledger
entries before the range, its lines are the entries inside it (a session drawn from several lots,
or its void, is one line), and its closing balance is the opening plus the lines. The range is in
days of the account holder's time zone, both ends included: [start 00:00, end + 1 day 00:00) there.
Lines follow occurred_at (when it happened, not when it was booked), then the entry's id.

Money in the range is read beside the hours: payments settled in it and refunds on their way back
to the card (Refund.APPLIED) requested in it, per currency.
"""

import gc
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q, Sum, TextChoices
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from billing.errors import StatementRangeInvalid
from billing.formatting import (
    date_text,
    datetime_text,
    hours_input,
    hours_text,
    iso_date,
    iso_datetime,
    money_input,
    money_text,
    period_text,
    reader_locale,
    signed_hours_text,
    time_zone_of,
)
from billing.ledger import account_lock
from billing.models import Account, LedgerEntry, Payment, Refund, StatementEmail
from billing.receipts import document_parties, page_numbers_css

logger = logging.getLogger(__name__)

STATEMENT_YEARS_MAX = 5
# The days a statement may cover at all: before the portal existed there is nothing, and a date
# far out would overflow the database's datetimes once turned into the range's end.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2199, 12, 31)
# The monthly email: a claim this old without a sent email is taken to have failed and is tried
# again (the job runs hourly on the first of the month), at most this many times.
STALE_CLAIM = timedelta(minutes=30)
EMAIL_ATTEMPTS_MAX = 5

# The PDF lists its lines as preformatted text in a monospaced face, in blocks of a few lines:
# WeasyPrint lays out a table at ~5 ms a row (2,000 lines: 9 s), a text line at well under 1 ms, and
# draws each character in Python, so a line is kept short: figures first, the description last.
LISTING_LINES_PER_BLOCK = 20
LISTING_WIDTHS = (18, 9, 10, 60)  # date, in / out, balance, description (characters)

# In English (tests name them); translated where they are shown.
RANGE_BACKWARDS = gettext_noop("The statement must end on or after the day it starts.")
RANGE_TOO_LONG = gettext_noop("A statement covers at most %(years)d years. Choose a shorter range.")
RANGE_OUT_OF_BOUNDS = gettext_noop("Choose dates between %(first)s and %(last)s.")


class LineKind(TextChoices):
    """What a statement line is, as the student reads it."""

    PURCHASE = "purchase", gettext_lazy("Purchase")
    SUBSCRIPTION = "subscription", gettext_lazy("Subscription period")
    GRANT = "grant", gettext_lazy("Grant")
    SESSION = "session", gettext_lazy("Session")
    SESSION_VOIDED = "session_voided", gettext_lazy("Session voided")
    EXPIRY = "expiry", gettext_lazy("Expiry")
    EXPIRY_REOPENED = "expiry_reopened", gettext_lazy("Expiry reopened")
    REFUND = "refund", gettext_lazy("Refund")
    DISPUTE_HOLD = "dispute_hold", gettext_lazy("Held for a dispute")
    DISPUTE_RELEASE = "dispute_release", gettext_lazy("Released after a dispute")
    ADJUSTMENT = "adjustment", gettext_lazy("Adjustment")


# Ledger kinds whose line reads as the kind of its ledger entry alone (credits depend on the lot).
_LINE_KINDS = {
    LedgerEntry.Kind.GRANT: LineKind.GRANT,
    LedgerEntry.Kind.USAGE: LineKind.SESSION,
    LedgerEntry.Kind.VOID: LineKind.SESSION_VOIDED,
    LedgerEntry.Kind.EXPIRY: LineKind.EXPIRY,
    LedgerEntry.Kind.EXPIRY_REVERSAL: LineKind.EXPIRY_REOPENED,
    LedgerEntry.Kind.REVERSAL: LineKind.REFUND,
    LedgerEntry.Kind.DISPUTE_HOLD: LineKind.DISPUTE_HOLD,
    LedgerEntry.Kind.DISPUTE_RELEASE: LineKind.DISPUTE_RELEASE,
    LedgerEntry.Kind.ADJUSTMENT: LineKind.ADJUSTMENT,
}
_SESSION_KINDS = {LedgerEntry.Kind.USAGE, LedgerEntry.Kind.VOID}


@dataclass(frozen=True)
class StatementLine:
    """One movement of hours: its minutes in or out (one of them 0) and the balance after it."""

    occurred_at: datetime
    kind: str  # a LineKind
    minutes_in: int
    minutes_out: int
    balance_minutes: int
    lot_name: str = ""
    reason: str = ""
    subject: str = ""
    tutor: str = ""

    @property
    def minutes(self):
        return self.minutes_in - self.minutes_out

    @property
    def label(self):
        return LineKind(self.kind).label

    @property
    def detail(self):
        """What the line is about, in the active language: the session, the adjustment's reason, else
        the package (lot) it touched."""
        if self.kind in (LineKind.SESSION, LineKind.SESSION_VOIDED):
            return _("%(subject)s with %(tutor)s") % {"subject": self.subject, "tutor": self.tutor}
        if self.kind == LineKind.ADJUSTMENT:
            return self.reason or self.lot_name
        return self.lot_name

    @property
    def description(self):
        return f"{self.label}: {self.detail}"


@dataclass(frozen=True)
class Statement:
    """An account's hours from `start` to `end` (days in `time_zone`, both included)."""

    account: Account
    start: date
    end: date
    time_zone: object
    opening_minutes: int
    lines: tuple
    closing_minutes: int
    # ((currency, cents), ...), by currency: money paid, and refunded, in the range.
    paid: tuple = field(default=())
    refunded: tuple = field(default=())

    @property
    def minutes_in(self):
        return sum(line.minutes_in for line in self.lines)

    @property
    def minutes_out(self):
        return sum(line.minutes_out for line in self.lines)

    @property
    def is_calendar_month(self):
        return self.start.day == 1 and self.end == _month_end(self.start)

    def filename(self, extension):
        """statement-2026-11.pdf for a calendar month, else statement-2026-11-03-to-2026-12-02.pdf."""
        if self.is_calendar_month:
            return f"statement-{self.start.year:04d}-{self.start.month:02d}.{extension}"
        return f"statement-{self.start.isoformat()}-to-{self.end.isoformat()}.{extension}"


def statement_range_check(start, end):
    """Refuse a range that is not one a statement can cover, with a message to show."""
    if start > end:
        raise StatementRangeInvalid(_(RANGE_BACKWARDS))
    if start < FIRST_DAY or end > LAST_DAY:
        raise StatementRangeInvalid(
            _(RANGE_OUT_OF_BOUNDS) % {"first": date_text(FIRST_DAY), "last": date_text(LAST_DAY)}
        )
    if end >= _years_after(start, STATEMENT_YEARS_MAX):
        raise StatementRangeInvalid(_(RANGE_TOO_LONG) % {"years": STATEMENT_YEARS_MAX})


def statement_default_range(*, account, today=None):
    """The last calendar month in the account holder's time zone: (first day, last day)."""
    today = today or timezone.localdate(timezone=time_zone_of(account.user))
    return _previous_month(today)


def statement_build(*, account, start, end):
    """The statement of `account` from `start` to `end` (dates, both included, in the account
    holder's time zone). Four queries, whatever the number of lines."""
    statement_range_check(start, end)
    zone = time_zone_of(account.user)
    starts_at, ends_at = _midnight(start, zone), _midnight(end + timedelta(days=1), zone)
    entries = LedgerEntry.objects.filter(account=account)
    opening = entries.filter(occurred_at__lt=starts_at).aggregate(total=Sum("minutes"))["total"] or 0
    rows = (
        entries.filter(occurred_at__gte=starts_at, occurred_at__lt=ends_at)
        .order_by("occurred_at", "id")
        .values_list(
            "kind",
            "minutes",
            "occurred_at",
            "reason",
            "usage_id",
            "usage__subject",
            "usage__tutor",
            "lot__name",
            "lot__payment__subscription_id",
        )
    )
    lines = _lines(rows, opening)
    paid = (
        Payment.objects.filter(
            account=account, status=Payment.Status.SUCCEEDED, settled_at__gte=starts_at, settled_at__lt=ends_at
        )
        .values("currency")
        .annotate(cents=Sum("amount_cents"))
        .order_by("currency")
    )
    refunded = (
        Refund.objects.filter(
            payment__account=account, status__in=Refund.APPLIED, created_at__gte=starts_at, created_at__lt=ends_at
        )
        .values("currency")
        .annotate(cents=Sum("amount_cents"))
        .order_by("currency")
    )
    return Statement(
        account=account,
        start=start,
        end=end,
        time_zone=zone,
        opening_minutes=opening,
        lines=tuple(lines),
        closing_minutes=lines[-1].balance_minutes if lines else opening,
        paid=tuple((row["currency"], row["cents"]) for row in paid),
        refunded=tuple((row["currency"], row["cents"]) for row in refunded),
    )


def _lines(rows, opening):
    """The statement's lines from its ledger rows in order: the entries of one session (one per lot
    it drew on), or of its void, are booked together and read as one line."""
    lines, balance = [], opening
    pending = None  # (kind, usage id, fields) of the line being gathered
    for kind, minutes, occurred_at, reason, usage_id, subject, tutor, lot_name, subscription_id in rows:
        if pending and kind in _SESSION_KINDS and pending[0] == kind and pending[1] == usage_id:
            pending[2]["minutes"] += minutes
            continue
        if pending:
            balance = _line_close(lines, pending, balance)
        if kind == LedgerEntry.Kind.CREDIT:
            line_kind = LineKind.SUBSCRIPTION if subscription_id else LineKind.PURCHASE
        else:
            line_kind = _LINE_KINDS[kind]
        pending = (
            kind,
            usage_id,
            {
                "occurred_at": occurred_at,
                "kind": line_kind,
                "minutes": minutes,
                "lot_name": lot_name,
                "reason": reason,
                "subject": subject or "",
                "tutor": tutor or "",
            },
        )
    if pending:
        _line_close(lines, pending, balance)
    return lines


def _line_close(lines, pending, balance):
    fields = dict(pending[2])
    minutes = fields.pop("minutes")
    balance += minutes
    lines.append(
        StatementLine(minutes_in=max(minutes, 0), minutes_out=max(-minutes, 0), balance_minutes=balance, **fields)
    )
    return balance


def statement_pdf(*, statement):
    """The statement as PDF bytes, in the active language, its times in the account holder's zone."""
    from weasyprint import HTML  # heavy import (~0.6 s): only where PDFs are made

    with timezone.override(statement.time_zone):
        doc = _document(statement)
        heading = _("Statement of account: %(period)s") % {"period": doc["period"]}
        context = {
            "statement": statement,
            "doc": doc,
            "heading": heading,
            # The receipts' footer, as a page margin's text rather than a running element: the same
            # line, drawn without laying out an element on each of a long statement's pages.
            "footer": _css_string(doc["seller_name"] + " · " + heading + " · ") + " " + page_numbers_css(),
            "listing_head": _listing_line(_("Date"), _("In / out"), _("Balance"), _("Description")),
            "listing_blocks": _listing_blocks(statement.lines),
        }
        html = render_to_string("billing/statement.html", context)
    # WeasyPrint makes a few million short-lived objects for a long statement: without the cyclic
    # collector walking a big process's heap again and again meanwhile, it renders a third faster.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
    finally:
        if collecting:
            gc.enable()


def _css_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _document(statement):
    """The statement's texts: parties, range and figures, formatted for the reader."""
    currency = settings.PORTAL_CURRENCY
    return document_parties(statement.account) | {
        "period": _period_text(statement),
        "start": date_text(statement.start),
        "end": date_text(statement.end),
        "issued_at": date_text(timezone.now()),
        "opening": hours_text(statement.opening_minutes),
        "hours_in": hours_text(statement.minutes_in),
        "hours_out": hours_text(statement.minutes_out),
        "closing": hours_text(statement.closing_minutes),
        "paid": [money_text(cents, code) for code, cents in statement.paid] or [money_text(0, currency)],
        "refunded": [money_text(cents, code) for code, cents in statement.refunded] or [money_text(0, currency)],
    }


def _period_text(statement):
    if statement.is_calendar_month:
        return period_text(statement.start, "month")
    return f"{date_text(statement.start)} – {date_text(statement.end)}"


def _listing_blocks(lines):
    """The lines as text, a few to a block: each line one run of text (see LISTING_LINES_PER_BLOCK)."""
    texts = [
        _listing_line(
            datetime_text(line.occurred_at),
            signed_hours_text(line.minutes),
            hours_text(line.balance_minutes),
            line.description,
        )
        for line in lines
    ]
    return [
        "\n".join(texts[index : index + LISTING_LINES_PER_BLOCK])
        for index in range(0, len(texts), LISTING_LINES_PER_BLOCK)
    ]


def _listing_line(when, change, balance, description):
    date_width, change_width, balance_width, description_width = LISTING_WIDTHS
    return " ".join(
        (
            _fit(when, date_width).ljust(date_width),
            _fit(change, change_width).rjust(change_width),
            _fit(balance, balance_width).rjust(balance_width),
            " " + _fit(description, description_width),
        )
    )


def _fit(text, width):
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def statement_csv_rows(*, statement):
    """The statement as CSV rows (lists of cells), header first, in the active language: the opening
    balance, each line with its minutes and hours in and out and the balance after it, the closing
    balance, then the money paid and refunded per currency. Figures are plain numbers (minutes, and
    hours with a dot) for a spreadsheet to add up; times are local ISO 8601 with their offset."""
    with timezone.override(statement.time_zone):
        yield [
            _("Date"),
            _("Type"),
            _("Description"),
            _("Minutes in"),
            _("Minutes out"),
            _("Balance (minutes)"),
            _("Hours in"),
            _("Hours out"),
            _("Balance (hours)"),
        ]
        opening = statement.opening_minutes
        yield [iso_date(statement.start), _("Opening balance"), "", "", "", opening, "", "", hours_input(opening)]
        for line in statement.lines:
            yield [
                iso_datetime(line.occurred_at),
                line.label,
                line.detail,
                line.minutes_in,
                line.minutes_out,
                line.balance_minutes,
                hours_input(line.minutes_in),
                hours_input(line.minutes_out),
                hours_input(line.balance_minutes),
            ]
        closing = statement.closing_minutes
        yield [iso_date(statement.end), _("Closing balance"), "", "", "", closing, "", "", hours_input(closing)]
        for label, amounts in ((_("Paid"), statement.paid), (_("Refunded"), statement.refunded)):
            for currency, cents in amounts:
                yield [iso_date(statement.end), label, currency, "", "", "", "", "", money_input(cents)]


def statement_emails_set(*, account, enabled):
    """Turn the monthly statement email on or off for the account. Returns the account."""
    with transaction.atomic():
        account = account_lock(account_id=account.pk)
        account.statement_emails = bool(enabled)
        account.save(update_fields=["statement_emails"])
    return account


def statements_email_due(*, today=None):
    """Email last month's statement to every student who asked for it, once each: a row per student
    and month is claimed first (the unique constraint makes a second run, or two at once, find it),
    and each send attempt is taken by a conditional update, so two runs never both send. A claim
    that is STALE_CLAIM old without a sent email failed, and is tried again, EMAIL_ATTEMPTS_MAX
    times at most. Returns how many were sent."""
    now = timezone.now()
    today = today or timezone.localdate()
    month, month_end = _previous_month(today)
    opted_in = Account.objects.filter(statement_emails=True, created_at__lt=_midnight(today.replace(day=1)))
    StatementEmail.objects.bulk_create(
        [StatementEmail(account_id=pk, month=month, claimed_at=now) for pk in opted_in.values_list("pk", flat=True)],
        ignore_conflicts=True,
    )
    due = StatementEmail.objects.filter(
        Q(attempts=0) | Q(claimed_at__lte=now - STALE_CLAIM),
        month=month,
        sent_at__isnull=True,
        attempts__lt=EMAIL_ATTEMPTS_MAX,
        account__statement_emails=True,
    ).select_related("account__user")
    sent = 0
    for claim in due.iterator(chunk_size=200):
        taken = StatementEmail.objects.filter(pk=claim.pk, attempts=claim.attempts, sent_at__isnull=True).update(
            attempts=F("attempts") + 1, claimed_at=now
        )
        if not taken:
            continue  # another run took it meanwhile
        try:
            statement_email(account=claim.account, start=month, end=month_end)
        except Exception:
            logger.exception(
                "The statement of %s for account %s was not sent (attempt %s); a later run tries again.",
                month,
                claim.account_id,
                claim.attempts + 1,
            )
            continue
        StatementEmail.objects.filter(pk=claim.pk).update(sent_at=timezone.now())
        sent += 1
    return sent


def statement_email(*, account, start, end):
    """Send the statement of `start` to `end` to the student, in their language and time zone, as a
    PDF attachment (plain text and HTML)."""
    user = account.user
    with reader_locale(user):
        statement = statement_build(account=account, start=start, end=end)
        doc = _document(statement)
        context = {"statement": statement, "doc": doc, "base_url": settings.PORTAL_BASE_URL}
        message = EmailMultiAlternatives(
            subject=_("Your statement for %(period)s") % {"period": doc["period"]},
            body=render_to_string("email/statement_monthly.txt", context),
            to=[user.email],
        )
        message.attach_alternative(render_to_string("email/statement_monthly.html", context), "text/html")
        message.attach(statement.filename("pdf"), statement_pdf(statement=statement), "application/pdf")
    message.send()
    return message


def _midnight(day, zone=None):
    """00:00 of `day` in `zone` (the active one by default), as an aware datetime."""
    return datetime(day.year, day.month, day.day, tzinfo=zone or timezone.get_current_timezone())


def _month_end(day):
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def _previous_month(today):
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def _years_after(day, years):
    """The same day `years` later (1 March for 29 February in a year without it)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)
