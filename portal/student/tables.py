"""The student's history tables. Sort and page links work as plain links; HTMX swaps only the table."""

import django_tables2 as tables

from billing.models import LedgerEntry, Lot, Usage
from portal.templatetags.portal_format import duration, hours, price_paid


def stable_order(field):
    """An order_FOO method that breaks ties by id, so that paging through equal values (many
    sessions of 60 minutes) never repeats or skips a row."""

    def order(self, queryset, is_descending):
        sign = "-" if is_descending else ""
        return queryset.order_by(f"{sign}{field}", f"{sign}id"), True

    return order


class UsageTable(tables.Table):
    occurred_at = tables.DateTimeColumn(verbose_name="Date", format="j M Y, H:i")
    subject = tables.Column()
    tutor = tables.Column()
    minutes = tables.Column(verbose_name="Duration", attrs={"td": {"class": "num"}, "th": {"class": "num"}})

    class Meta:
        model = Usage
        fields = ["occurred_at", "subject", "tutor", "minutes"]
        order_by = "-occurred_at"
        empty_text = "No sessions yet. Your tutoring sessions will be listed here."
        attrs = {"class": "data-table"}

    caption = "Your tutoring sessions"

    order_occurred_at = stable_order("occurred_at")
    order_subject = stable_order("subject")
    order_tutor = stable_order("tutor")
    order_minutes = stable_order("minutes")

    def render_minutes(self, value):
        return duration(value)


class PurchaseTable(tables.Table):
    purchased_at = tables.DateTimeColumn(verbose_name="Bought", format="j M Y")
    name = tables.Column(verbose_name="Package")
    minutes_purchased = tables.Column(verbose_name="Hours", attrs={"td": {"class": "num"}, "th": {"class": "num"}})
    price_cents = tables.Column(verbose_name="Paid", attrs={"td": {"class": "num"}, "th": {"class": "num"}})
    expires_at = tables.DateTimeColumn(verbose_name="Expires", format="j M Y")

    class Meta:
        model = Lot
        fields = ["purchased_at", "name", "minutes_purchased", "price_cents", "expires_at"]
        order_by = "-purchased_at"
        empty_text = "No purchases yet."
        attrs = {"class": "data-table"}

    caption = "Packages you bought"

    def render_minutes_purchased(self, value):
        return hours(value)

    def render_price_cents(self, record):
        return price_paid(record)


class LotHistoryTable(tables.Table):
    occurred_at = tables.DateTimeColumn(verbose_name="Date", format="j M Y, H:i", orderable=False)
    kind = tables.Column(verbose_name="What", orderable=False)
    detail = tables.Column(empty_values=(), verbose_name="Details", orderable=False)
    minutes = tables.Column(
        verbose_name="Change", orderable=False, attrs={"td": {"class": "num"}, "th": {"class": "num"}}
    )

    class Meta:
        model = LedgerEntry
        fields = ["occurred_at", "kind", "detail", "minutes"]
        attrs = {"class": "data-table"}

    def render_detail(self, record):
        if record.usage_id:
            return f"{record.usage.subject} with {record.usage.tutor}"
        return record.reason or "—"

    def render_minutes(self, value):
        sign = "+" if value > 0 else "−"
        return f"{sign}{hours(abs(value))}"
