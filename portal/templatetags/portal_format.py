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


@register.filter
@_empty_stays_empty
def hours(minutes):
    return formatting.hours_text(minutes)


@register.filter
@_empty_stays_empty
def signed_hours(minutes):
    return formatting.signed_hours_text(minutes)


@register.filter
@_empty_stays_empty
def duration(minutes):
    return formatting.duration_text(minutes)


@register.filter
@_empty_stays_empty
def money(cents, currency=None):
    return formatting.money_text(cents, currency or settings.PORTAL_CURRENCY)


@register.filter
def price_paid(lot):
    return formatting.price_paid_text(lot.price_cents, lot.currency)


@register.filter
@_empty_stays_empty
def day(moment):
    """1 Dec 2026."""
    return formatting.date_text(moment)


@register.filter
@_empty_stays_empty
def day_month(moment):
    """1 Dec."""
    return formatting.day_month_text(moment)


@register.filter
@_empty_stays_empty
def when(moment, detail=""):
    """1 Dec 2026, 19:16; `when:"seconds"` 19:16:05."""
    return formatting.datetime_text(moment, seconds=detail == "seconds")


@register.filter
@_empty_stays_empty
def iso_day(moment):
    """2026-12-01, for links that carry a date filter."""
    return formatting.iso_date(moment)


@register.filter
@_empty_stays_empty
def iso_when(moment):
    """2026-12-01T19:16:05+01:00, for <time datetime>."""
    return formatting.iso_datetime(moment)


@register.filter
@_empty_stays_empty
def until(moment):
    return formatting.until_text(moment)


@register.filter
def days_left(moment):
    return None if moment is None else formatting.days_until(moment)


@register.filter
@_empty_stays_empty
def words(code):
    return formatting.code_text(code)
