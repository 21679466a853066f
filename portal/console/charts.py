"""A small bar chart of daily revenue, drawn on the server as SVG (no script, no CDN)."""

from dataclasses import dataclass

from django.conf import settings

from billing.formatting import day_month_text, money_text

WIDTH, HEIGHT, GAP = 600, 140, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


def revenue_chart(daily, currency=None):
    """Bars for [(date, cents), ...], scaled to the best day; each bar carries its text for a tooltip
    and for screen readers (the chart's table alternative is the figures above it)."""
    currency = currency or settings.PORTAL_CURRENCY
    best = max((cents for _, cents in daily), default=0)
    slot = WIDTH / max(len(daily), 1)
    bars = []
    for index, (day, cents) in enumerate(daily):
        height = round(HEIGHT * cents / best, 1) if best else 0
        bars.append(
            Bar(
                x=round(index * slot + GAP / 2, 1),
                y=round(HEIGHT - height, 1),
                width=round(slot - GAP, 1),
                height=height,
                label=f"{day_month_text(day)}: {money_text(cents, currency)}",
            )
        )
    return {"bars": bars, "width": WIDTH, "height": HEIGHT, "best": money_text(best, currency)}
