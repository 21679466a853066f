"""How minutes and cents read as text: the one implementation, used by pages and receipts alike."""

from decimal import ROUND_HALF_UP, Decimal

CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


def hours_text(minutes):
    """210 -> "3.5 h"; 50 -> "0.83 h"; 600 -> "10 h"."""
    value = (Decimal(minutes) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{value:f}".rstrip("0").rstrip(".") + " h"


def duration_text(minutes):
    """90 -> "1 h 30 min"; 50 -> "50 min"; 120 -> "2 h"."""
    whole_hours, rest = divmod(int(minutes), 60)
    parts = [f"{whole_hours} h"] if whole_hours else []
    if rest or not parts:
        parts.append(f"{rest} min")
    return " ".join(parts)


def money_text(cents, currency, *, symbol=False):
    """15000, "EUR" -> "EUR 150.00" (pages: the code spelled out) or "€150.00" (printed documents)."""
    amount = f"{(Decimal(cents) / 100).quantize(Decimal('0.01')):,.2f}"
    if symbol and currency in CURRENCY_SYMBOLS:
        return f"{CURRENCY_SYMBOLS[currency]}{amount}"
    return f"{currency} {amount}"
