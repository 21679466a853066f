"""Template filters over billing.formatting, the one home of how minutes, money, dates and times
read. A filter decides nothing of its own: `None` (an empty field) shows as nothing, so a template
can add `|default:"—"`."""

from functools import wraps

from django import template
from django.conf import settings

from billing import formatting

register = template.Library()


def _empty_stays_empty(format_function):
    @wraps(format_function)
    def format_or_nothing(value, *args):
        return "" if value is None or value == "" else format_function(value, *args)

    return format_or_nothing


# {{ minutes|hours }}, {{ moment|day }} ...: each one function of billing.formatting.
for name, format_function in {
    "hours": formatting.hours_text,  # 3.5 h
    "signed_hours": formatting.signed_hours_text,  # +1.5 h
    "day": formatting.date_text,  # 1 Dec 2026
    "day_month": formatting.day_month_text,  # 1 Dec
    "iso_day": formatting.iso_date,  # 2026-12-01, for links that carry a date filter
    "iso_when": formatting.iso_datetime,  # 2026-12-01T19:16:05+01:00, for <time datetime>
    "until": formatting.until_text,  # today, tomorrow, in 5 days
    "elapsed": formatting.elapsed_text,  # 340 ms, 1.2 s, 2 min 5 s: how long a job ran
}.items():
    register.filter(name, _empty_stays_empty(format_function))


@register.filter
@_empty_stays_empty
def money(cents, currency=None):
    return formatting.money_text(cents, currency or settings.PORTAL_CURRENCY)


@register.filter
@_empty_stays_empty
def when(moment, detail=""):
    """1 Dec 2026, 19:16; `when:"seconds"` 19:16:05."""
    return formatting.datetime_text(moment, seconds=detail == "seconds")


@register.filter
def price_paid(lot):
    return formatting.price_paid_text(lot.price_cents, lot.currency)


@register.filter
def days_left(moment):
    return None if moment is None else formatting.days_until(moment)
