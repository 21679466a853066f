"""Template filters for minutes, money and dates (the text itself comes from billing.formatting)."""

from django import template
from django.conf import settings
from django.utils import timezone

from billing.formatting import duration_text, hours_text, money_text

register = template.Library()


@register.filter
def hours(minutes):
    return "" if minutes is None else hours_text(minutes)


@register.filter
def duration(minutes):
    return "" if minutes is None else duration_text(minutes)


@register.filter
def money(cents, currency=None):
    return "" if cents is None else money_text(cents, currency or settings.PORTAL_CURRENCY)


@register.filter
def until(moment):
    """ "today", "tomorrow" or "in 5 days": how far off a date is, in the student's calendar."""
    days = days_left(moment)
    if days is None:
        return ""
    if days <= 0:
        return "today"
    return "tomorrow" if days == 1 else f"in {days} days"


@register.filter
def days_left(moment):
    """Whole calendar days from today (local time) until `moment`; negative once past."""
    if moment is None:
        return None
    today = timezone.localdate()
    return (timezone.localtime(moment).date() - today).days


@register.filter
def price_paid(lot):
    """What a lot cost, or "Included" for hours granted without a payment."""
    return money(lot.price_cents, lot.currency) if lot.price_cents else "Included"


@register.filter
def signed_hours(minutes):
    """A change of hours: 90 -> "+1.5 h", -50 -> "−0.83 h"."""
    return f"{'+' if minutes > 0 else '−'}{hours_text(abs(minutes))}"


@register.filter
def words(value):
    """Stripe's codes as words: "needs_response" -> "needs response"."""
    return str(value).replace("_", " ")
