"""A small bar chart of daily revenue, drawn on the server as SVG (no script, no CDN)."""

from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from billing.formatting import day_month_text, money_text

WIDTH, HEIGHT, GAP = 600, 140, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str
    amount: str

    @property
    def label(self):
        """The bar's tooltip and accessible text: "1 Dec: €150.00"."""
        return _("%(day)s: %(amount)s") % {"day": self.day, "amount": self.amount}


def revenue_chart(daily, currency=None):
    """Bars for [(date, cents), ...], scaled to the best day; each bar carries its day and amount as
    text, for its tooltip and for the table the page shows as the chart's text alternative (so the
    table and the bars cannot disagree)."""
    currency = currency or settings.PORTAL_CURRENCY
    best = max((cents for _day, cents in daily), default=0)
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
                day=day_month_text(day),
                amount=money_text(cents, currency),
            )
        )
    return {"bars": bars, "width": WIDTH, "height": HEIGHT, "best": money_text(best, currency)}
