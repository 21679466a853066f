"""How minutes, cents, dates and times read as text: the one implementation, used by pages, tables,
emails, receipts and the texts we send Stripe alike.

Dates and times are always shown in the viewer's local time (the active time zone): every function
here converts an aware datetime first, so no caller formats UTC by mistake. The formats themselves
are the constants below, so that a change of format (or of language) is made here once.
"""

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.utils import dateformat, timezone

CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
# Django's date format characters (https://docs.djangoproject.com/en/5.2/ref/templates/builtins/#date).
DATE = "j M Y"  # 1 Dec 2026
DAY_MONTH = "j M"  # 1 Dec
DATETIME = "j M Y, H:i"  # 1 Dec 2026, 19:16
DATETIME_SECONDS = "j M Y, H:i:s"  # 1 Dec 2026, 19:16:05
MONTH = "F Y"  # December 2026: a monthly subscription's period
DATETIME_ZONE = "j M Y, H:i T"  # 1 Dec 2026, 19:16 CET: for texts read far from the portal (Stripe)


def period_text(start, interval):
    """The period a subscription payment pays for, by its start: "December 2026" for a month,
    "week of 7 Dec 2026" for a week."""
    if interval == "week":
        return f"week of {date_text(start)}"
    return dateformat.format(timezone.localtime(start), MONTH)


def hours_text(minutes):
    """210 -> "3.5 h"; 50 -> "0.83 h"; 600 -> "10 h"."""
    value = (Decimal(minutes) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{value:f}".rstrip("0").rstrip(".") + " h"


def signed_hours_text(minutes):
    """A change of hours: 90 -> "+1.5 h", -50 -> "−0.83 h"."""
    return f"{'+' if minutes > 0 else '−'}{hours_text(abs(minutes))}"


def duration_text(minutes):
    """90 -> "1 h 30 min"; 50 -> "50 min"; 120 -> "2 h"."""
    whole_hours, rest = divmod(int(minutes), 60)
    parts = [f"{whole_hours} h"] if whole_hours else []
    if rest or not parts:
        parts.append(f"{rest} min")
    return " ".join(parts)


def duration_input(minutes):
    """Minutes as a duration field shows them: 75 -> "1:15", 550 -> "9:10", -90 -> "-1:30"."""
    whole_hours, rest = divmod(abs(minutes), 60)
    return f"{'-' if minutes < 0 else ''}{whole_hours}:{rest:02d}"


def money_text(cents, currency, *, symbol=False):
    """15000, "EUR" -> "EUR 150.00" (pages: the code spelled out) or "€150.00" (printed documents)."""
    amount = f"{_units(cents):,.2f}"
    if symbol and currency in CURRENCY_SYMBOLS:
        return f"{CURRENCY_SYMBOLS[currency]}{amount}"
    return f"{currency} {amount}"


def price_paid_text(cents, currency):
    """What a lot cost, or "Included" for hours granted without a payment."""
    return money_text(cents, currency) if cents else "Included"


def money_input(cents):
    """Cents as the amount a form field or a CSV cell holds: 7550 -> "75.50" (no grouping)."""
    return f"{_units(cents):f}"


def _units(cents):
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


def local(moment):
    """An aware datetime in the viewer's time zone; a date (or a naive datetime) as it is."""
    if isinstance(moment, datetime) and timezone.is_aware(moment):
        return timezone.localtime(moment)
    return moment


def date_text(moment):
    """1 Dec 2026 (the local calendar date of a datetime)."""
    return dateformat.format(local(moment), DATE)


def day_month_text(moment):
    """1 Dec."""
    return dateformat.format(local(moment), DAY_MONTH)


def datetime_text(moment, *, seconds=False, zone=False):
    """1 Dec 2026, 19:16 in local time; with `seconds` 19:16:05, with `zone` 19:16 CET."""
    pattern = DATETIME_ZONE if zone else DATETIME_SECONDS if seconds else DATETIME
    return dateformat.format(local(moment), pattern)


def iso_date(moment):
    """2026-12-01: the local date as forms and links with date filters take it."""
    moment = local(moment)
    return (moment.date() if isinstance(moment, datetime) else moment).isoformat()


def iso_datetime(moment):
    """2026-12-01T19:16:05+01:00: a machine-readable moment with its offset (<time datetime>)."""
    return local(moment).isoformat(timespec="seconds")


def days_until(moment, *, today=None):
    """Whole calendar days from today (local) until `moment`; 0 on the day itself, negative once past."""
    moment = local(moment)
    day = moment.date() if isinstance(moment, datetime) else moment
    return (day - (today or timezone.localdate())).days


def until_text(moment):
    """ "today", "tomorrow" or "in 5 days": how far off a date is, in the viewer's calendar."""
    days = days_until(moment)
    if days <= 0:
        return "today"
    return "tomorrow" if days == 1 else f"in {days} days"


def code_text(code):
    """Stripe's codes as words: "needs_response" -> "needs response"."""
    return str(code).replace("_", " ")
