"""How minutes, cents, dates and times read as text: the one implementation, used by pages, tables,
emails, receipts and the texts we send Stripe alike.

Everything here reads in the active language (English or European Portuguese) through Babel's CLDR
data: "€150.00" and "1 Dec 2026" in English, "150,00 €" and "1/12/2026" in Portuguese. Dates and
times are shown in the reader's local time (the active time zone): every function converts an aware
datetime first, so no caller formats UTC by mistake. `reader_locale` switches both to someone who
is not the one asking (the recipient of an email, a PDF or an alert).

Babel reads its CLDR pattern on every call, and a page shows the same few prices, amounts of hours
and days many times over: the texts are kept per value and locale (they depend on nothing else).
"""

import zoneinfo
from contextlib import contextmanager
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from babel import dates as babel_dates
from babel import numbers as babel_numbers
from django.conf import settings
from django.utils import dateformat, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

# Django's language codes -> the CLDR locale whose conventions they read in (British English:
# "1 Dec 2026", "€150.00").
BABEL_LOCALES = {"en": "en_GB", "pt-pt": "pt_PT"}
# CLDR skeletons: which parts a date shows; the locale decides their order and punctuation.
DATE = "yMMMd"  # 1 Dec 2026 / 1/12/2026
DAY_MONTH = "MMMd"  # 1 Dec / 1/12
MONTH = "yMMMM"  # December 2026 / dezembro de 2026: a monthly subscription's period


def babel_locale():
    """The CLDR locale of the active language."""
    language = translation.get_language() or settings.LANGUAGE_CODE
    return BABEL_LOCALES.get(language.lower(), BABEL_LOCALES[settings.LANGUAGE_CODE])


def language_of(user):
    """The language to write to `user` in: their own, else the site's default."""
    language = getattr(user, "language", "")
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def time_zone_of(user):
    """The zone `user` reads times in: their own, else the site's default."""
    name = getattr(user, "time_zone", "") or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


@contextmanager
def reader_locale(user):
    """Write for `user`, not for whoever is asking: a staff refund's credit note, an email sent by a
    background job, an alert created by a webhook all read in the recipient's language and zone."""
    with translation.override(language_of(user)), timezone.override(time_zone_of(user)):
        yield


def period_text(start, interval):
    """The period a subscription payment pays for, by its start: "December 2026" for a month,
    "week of 7 Dec 2026" for a week."""
    if interval == "week":
        return _("week of %(date)s") % {"date": date_text(start)}
    return _skeleton_text(MONTH, _day(start), babel_locale())


def hours_text(minutes):
    """210 -> "3.5 h" ("3,5 h" in Portuguese); 50 -> "0.83 h"; 600 -> "10 h"."""
    return _hours_text(int(minutes), babel_locale())


@lru_cache(maxsize=4096)
def _hours_text(minutes, locale):
    value = (Decimal(minutes) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{babel_numbers.format_decimal(value.normalize(), locale=locale)} h"


def signed_hours_text(minutes):
    """A change of hours: 90 -> "+1.5 h", -50 -> "−0.83 h"."""
    return f"{'+' if minutes > 0 else '−'}{hours_text(abs(minutes))}"


def hours_input(minutes):
    """Minutes as decimal hours for a CSV cell: 90 -> "1.50", 50 -> "0.83", -45 -> "-0.75" (no unit,
    no grouping, a dot whatever the language: what spreadsheets read as a number)."""
    value = (Decimal(int(minutes)) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{value:f}"


def duration_text(minutes):
    """90 -> "1 h 30 min"; 50 -> "50 min"; 120 -> "2 h"."""
    whole_hours, rest = divmod(int(minutes), 60)
    parts = [f"{whole_hours} h"] if whole_hours else []
    if rest or not parts:
        parts.append(f"{rest} min")
    return " ".join(parts)


def elapsed_text(milliseconds):
    """How long a background job ran: 340 -> "340 ms", 1240 -> "1.2 s" ("1,2 s" in Portuguese),
    125000 -> "2 min 5 s", 3720000 -> "1 h 2 min"."""
    milliseconds = int(milliseconds)
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    if milliseconds < 59_950:  # what still reads under "60.0 s"
        seconds = (Decimal(milliseconds) / 1000).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        return f"{babel_numbers.format_decimal(seconds, format='0.0', locale=babel_locale())} s"
    whole_minutes, seconds = divmod(milliseconds // 1000, 60)
    if whole_minutes < 60:
        return f"{whole_minutes} min {seconds} s" if seconds else f"{whole_minutes} min"
    return duration_text(whole_minutes)


def duration_input(minutes):
    """Minutes as a duration field shows them: 75 -> "1:15", 550 -> "9:10", -90 -> "-1:30"."""
    whole_hours, rest = divmod(abs(minutes), 60)
    return f"{'-' if minutes < 0 else ''}{whole_hours}:{rest:02d}"


def currency_text(currency):
    """ "EUR" -> "euros" in English, "euros" in Portuguese: a currency named as the reader says it."""
    return babel_numbers.get_currency_name(currency, count=2, locale=babel_locale())


def money_text(cents, currency):
    """15000, "EUR" -> "€150.00" in English, "150,00 €" in Portuguese (the locale's own pattern)."""
    return _money_text(int(cents), currency, babel_locale())


@lru_cache(maxsize=4096)
def _money_text(cents, currency, locale):
    return babel_numbers.format_currency(_units(cents), currency, locale=locale)


def price_paid_text(cents, currency):
    """What a lot cost, or "Included" for hours granted without a payment."""
    return money_text(cents, currency) if cents else _("Included")


def money_input(cents):
    """Cents as the amount a form field or a CSV cell holds: 7550 -> "75.50" (no grouping)."""
    return f"{_units(cents):f}"


def _units(cents):
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


def local(moment, zone=None):
    """An aware datetime in the viewer's time zone (or `zone`); a date (or a naive datetime) as it is."""
    if isinstance(moment, datetime) and timezone.is_aware(moment):
        return timezone.localtime(moment, zone)
    return moment


def date_text(moment):
    """1 Dec 2026 (the local calendar date of a datetime)."""
    return _skeleton_text(DATE, _day(moment), babel_locale())


def day_month_text(moment):
    """1 Dec."""
    return _skeleton_text(DAY_MONTH, _day(moment), babel_locale())


def _day(moment):
    """The local calendar day of a moment (what a date skeleton shows of it)."""
    moment = local(moment)
    return moment.date() if isinstance(moment, datetime) else moment


@lru_cache(maxsize=4096)
def _skeleton_text(skeleton, day, locale):
    return babel_dates.format_skeleton(skeleton, day, locale=locale)


def datetime_text(moment, *, seconds=False, zone=False):
    """1 Dec 2026, 19:16 in local time; with `seconds` 19:16:05, with `zone` 19:16 CET."""
    moment = local(moment)
    locale = babel_locale()
    # Kept per time as shown (to the minute, or the second): a long list of moments reuses them.
    shown = moment.time().replace(microsecond=0) if seconds else moment.time().replace(second=0, microsecond=0)
    time = _time_text(shown, "medium" if seconds else "short", locale)
    if zone:
        time = f"{time} {dateformat.format(moment, 'T')}"
    return _datetime_pattern(locale).replace("{1}", date_text(moment)).replace("{0}", time)


@lru_cache(maxsize=16)
def _datetime_pattern(locale):
    # Read from CLDR on every call otherwise: a statement of 2,000 lines asks for it 2,000 times.
    return babel_dates.get_datetime_format("medium", locale=locale)


@lru_cache(maxsize=4096)
def _time_text(time_of_day, length, locale):
    # Short and medium times show no zone: the local wall-clock time is all they read.
    return babel_dates.format_time(time_of_day, length, locale=locale)


def iso_date(moment):
    """2026-12-01: the local date as forms and links with date filters take it."""
    moment = local(moment)
    return (moment.date() if isinstance(moment, datetime) else moment).isoformat()


def iso_datetime(moment, zone=None):
    """2026-12-01T19:16:05+01:00: a machine-readable moment with its offset (<time datetime>), in the
    viewer's time zone or `zone`."""
    return local(moment, zone).isoformat(timespec="seconds")


def days_until(moment, *, today=None):
    """Whole calendar days from today (local) until `moment`; 0 on the day itself, negative once past."""
    moment = local(moment)
    day = moment.date() if isinstance(moment, datetime) else moment
    return (day - (today or timezone.localdate())).days


def until_text(moment):
    """ "today", "tomorrow" or "in 5 days": how far off a date is, in the viewer's calendar."""
    days = days_until(moment)
    if days <= 0:
        return _("today")
    if days == 1:
        return _("tomorrow")
    return ngettext("in %(days)d day", "in %(days)d days", days) % {"days": days}


def code_text(code):
    """Stripe's codes as words: "needs_response" -> "needs response"."""
    return str(code).replace("_", " ")
