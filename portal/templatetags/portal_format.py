"""The one place where minutes become hours and cents become money for display."""

from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.conf import settings
from django.utils import timezone

register = template.Library()


@register.filter
def hours(minutes):
    """210 -> "3.5 h"; 50 -> "0.83 h"; 600 -> "10 h"."""
    if minutes is None:
        return ""
    value = (Decimal(minutes) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = f"{value:f}".rstrip("0").rstrip(".")
    return f"{text} h"


@register.filter
def duration(minutes):
    """90 -> "1 h 30 min"; 50 -> "50 min"; 120 -> "2 h"."""
    if minutes is None:
        return ""
    whole_hours, rest = divmod(int(minutes), 60)
    parts = [f"{whole_hours} h"] if whole_hours else []
    if rest or not parts:
        parts.append(f"{rest} min")
    return " ".join(parts)


@register.filter
def money(cents, currency=None):
    """15000, "EUR" -> "EUR 150.00": the code spelled out, so no symbol is ever ambiguous."""
    if cents is None:
        return ""
    currency = currency or settings.PORTAL_CURRENCY
    amount = (Decimal(cents) / 100).quantize(Decimal("0.01"))
    return f"{currency} {amount:,.2f}"


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
