"""The student's history tables (the sessions table, shared with the console, is in portal.tables).
Sort and page links work as plain links; HTMX swaps only the table."""

import django_tables2 as tables
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import format_html

from alerts.models import Notification
from billing.formatting import hours_text, money_text, price_paid_text, signed_hours_text
from billing.models import LedgerEntry, Lot, Receipt
from portal.tables import NUMERIC, DayColumn, WhenColumn, stable_order


class PurchaseTable(tables.Table):
    purchased_at = DayColumn(verbose_name="Bought")
    name = tables.Column(verbose_name="Package")
    minutes_purchased = tables.Column(verbose_name="Hours", attrs=NUMERIC)
    price_cents = tables.Column(verbose_name="Paid", attrs=NUMERIC)
    expires_at = DayColumn(verbose_name="Expires")
    receipt = tables.Column(empty_values=(), verbose_name="Receipt", orderable=False)

    class Meta:
        model = Lot
        fields = ["purchased_at", "name", "minutes_purchased", "price_cents", "expires_at", "receipt"]
        order_by = "-purchased_at"
        empty_text = "No purchases yet."
        attrs = {"class": "data-table"}

    caption = "Packages you bought"

    def render_minutes_purchased(self, value):
        return hours_text(value)

    def render_receipt(self, record):
        receipt = getattr(getattr(record, "payment", None), "receipt", None)
        if receipt is None:
            return "—"
        url = reverse("student:receipt_download", args=[receipt.pk])
        # Not boosted: the table swaps itself with HTMX, a file must download normally.
        return format_html('<a href="{}" download hx-boost="false">Receipt {}</a>', url, receipt.number)

    def render_price_cents(self, record):
        return price_paid_text(record.price_cents, record.currency)


class LotHistoryTable(tables.Table):
    occurred_at = WhenColumn(verbose_name="Date", orderable=False)
    kind = tables.Column(verbose_name="What", orderable=False)
    detail = tables.Column(empty_values=(), verbose_name="Details", orderable=False)
    minutes = tables.Column(verbose_name="Change", orderable=False, attrs=NUMERIC)

    class Meta:
        model = LedgerEntry
        fields = ["occurred_at", "kind", "detail", "minutes"]
        attrs = {"class": "data-table"}

    def render_detail(self, record):
        if record.usage_id:
            return f"{record.usage.subject} with {record.usage.tutor}"
        return record.reason or "—"

    def render_minutes(self, value):
        return signed_hours_text(value)


class ReceiptTable(tables.Table):
    issued_at = DayColumn(verbose_name="Date")
    number = tables.Column(verbose_name="Number")
    description = tables.Column(empty_values=(), verbose_name="Description", orderable=False)
    amount = tables.Column(empty_values=(), verbose_name="Amount", orderable=False, attrs=NUMERIC)
    download = tables.Column(empty_values=(), verbose_name="PDF", orderable=False)

    class Meta:
        model = Receipt
        fields = ["issued_at", "number", "description", "amount", "download"]
        order_by = "-issued_at"
        empty_text = "No receipts yet. Every purchase and refund gets one."
        attrs = {"class": "data-table"}

    caption = "Your receipts and credit notes"
    order_issued_at = stable_order("issued_at")

    def render_number(self, value, record):
        return f"{record.get_kind_display()} {value}"

    def render_description(self, record):
        return record.snapshot.get("description", "")

    def render_amount(self, record):
        sign = "−" if record.kind == Receipt.Kind.CREDIT_NOTE else ""
        return sign + money_text(record.snapshot["amount_cents"], record.snapshot["currency"])

    def render_download(self, record):
        url = reverse("student:receipt_download", args=[record.pk])
        return format_html('<a href="{}" download>Download {}</a>', url, record.filename)


class NotificationTable(tables.Table):
    created_at = WhenColumn(verbose_name="When", orderable=False)
    title = tables.Column(verbose_name="Alert", orderable=False, attrs={"td": {"class": "wide"}})
    state = tables.Column(empty_values=(), verbose_name="", orderable=False)

    class Meta:
        model = Notification
        fields = ["created_at", "title", "state"]
        empty_text = "No alerts. We will tell you here when your hours run low or expire, and about payments."
        attrs = {"class": "data-table"}
        row_attrs = {"class": lambda record: "is-unread" if record.read_at is None else ""}

    caption = "Your alerts"

    def render_title(self, record):
        link = format_html(' <a href="{}">Open</a>', record.link) if record.link else ""
        return format_html("<strong>{}</strong><br>{}{}", record.title, record.body, link)

    def render_state(self, record):
        if record.read_at:
            return "Read"
        url = reverse("student:alert_mark_read", args=[record.pk])
        return format_html(
            '<form method="post" action="{}" hx-post="{}" hx-target="#inbox" hx-swap="outerHTML">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<button type="submit" class="button button-secondary">Mark read</button></form>',
            url,
            url,
            get_token(self.request),
        )
