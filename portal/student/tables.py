"""The student's history tables (the sessions table, shared with the console, is in portal.tables).
Sort and page links work as plain links; HTMX swaps only the table."""

import django_tables2 as tables
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from alerts.models import Notification
from billing.formatting import day_month_text, hours_text, money_text, price_paid_text, signed_hours_text
from billing.models import LedgerEntry, Receipt
from billing.selectors import PurchaseState
from portal.student.forms import HIDE_DECLINED, SHOW_DECLINED, PurchaseHistoryQuery
from portal.tables import NUMERIC, DayColumn, PortalTable, WhenColumn, stable_order, visually_hidden

DECLINED_PARAM = PurchaseHistoryQuery().add_prefix("declined")
# A state's badge: its colour echoes what the words already say.
STATE_BADGES = {
    PurchaseState.PAID: "badge-ok",
    PurchaseState.GRANTED: "badge-accent",
    PurchaseState.RESTORED: "badge-accent",
    PurchaseState.RELEASED: "badge-ok",
    PurchaseState.ON_HOLD: "badge-warn",
    PurchaseState.DISPUTED: "badge-warn",
    PurchaseState.UNDER_REVIEW: "badge-warn",
    PurchaseState.DISPUTE_LOST: "badge-danger",
    PurchaseState.FAILED: "badge-danger",
}
FREE = {PurchaseState.GRANTED, PurchaseState.RESTORED}
NOT_CHARGED = _("Not charged")
NOT_CHARGED_YET = _("Not charged yet")
FREE_TEXT = _("Free")
REFUNDED_TEXT = _("%(amount)s refunded, %(hours)s taken back.")
REFUNDED_MONEY_ONLY_TEXT = _("%(amount)s refunded; no hours taken back.")
ON_HOLD_TEXT = _("Disputed with your bank: %(hours)s on hold until the dispute is settled.")
DISPUTED_TEXT = _("Disputed with your bank; no hours are on hold.")
LOST_TEXT = _("The dispute went against the payment: %(hours)s removed.")
RELEASED_TEXT = _("The dispute is settled: %(hours)s released.")
RESTORED_TEXT = _("Hours of a voided session, back in a package of their own.")
GRANTED_TEXT = _("A gift from your school: no payment, no receipt.")


class PurchaseTable(PortalTable):
    """The student's payments and free lots (billing.selectors.purchase_history), each saying what
    became of it: refunded, on hold for a dispute, declined and why, granted."""

    bought_at = DayColumn(verbose_name=_("Bought"))
    name = tables.Column(verbose_name=_("Package"), orderable=False)
    minutes = tables.Column(verbose_name=_("Hours"), attrs=NUMERIC)
    amount_cents = tables.Column(verbose_name=_("Paid"), attrs=NUMERIC)
    state = tables.Column(empty_values=(), verbose_name=_("Status"), orderable=False, attrs={"td": {"class": "wide"}})
    receipt = tables.Column(empty_values=(), verbose_name=_("Receipt"), orderable=False)

    class Meta:
        order_by = "-bought_at"
        empty_text = _("No purchases yet.")
        attrs = {"class": "data-table"}
        template_name = "portal/_purchase_table.html"

    caption = _("Packages you bought or were given")

    declined_param = DECLINED_PARAM
    show_declined, hide_declined = SHOW_DECLINED, HIDE_DECLINED

    def __init__(self, *args, declined_shown=True, **kwargs):
        self.declined_shown = declined_shown
        super().__init__(*args, **kwargs)

    def filter_kept_query(self):
        """The query string's other parameters (the other table's sort and page), which the filter's
        form sends along; the page starts again at 1."""
        dropped = {DECLINED_PARAM, self.prefixed_page_field}
        return [(name, value) for name, values in self.request.GET.lists() if name not in dropped for value in values]

    def render_name(self, record):
        return format_html('{}<br><span class="small muted">{}</span>', record.name, record.kind)

    def render_minutes(self, value):
        return hours_text(value)

    def render_amount_cents(self, record):
        if record.state in FREE:
            return FREE_TEXT
        if not record.charged:
            # Under review without Stripe's word: it may yet turn out charged, and staff will say.
            waiting = record.state in {PurchaseState.CHECKING, PurchaseState.UNDER_REVIEW}
            return NOT_CHARGED_YET if waiting else NOT_CHARGED
        return price_paid_text(record.amount_cents, record.currency)

    def render_state(self, record):
        badge = format_html(
            '<span class="badge {}">{}</span>', STATE_BADGES.get(record.state, "badge-muted"), record.state.label
        )
        facts = format_html_join("", '<br><span class="small">{}</span>', ((fact,) for fact in _facts(record)))
        return badge + facts

    def render_receipt(self, record):
        if record.receipt is None:
            return "—"
        url = reverse("student:receipt_download", args=[record.receipt.pk])
        # Not boosted: the table swaps itself with HTMX, a file must download normally.
        label = gettext("Receipt %(number)s") % {"number": record.receipt.number}
        return format_html('<a href="{}" download hx-boost="false">{}</a>', url, label)


def _facts(row):
    """The sentences under a row's badge: everything that happened to it, not only the main state."""
    if row.failure_message:
        yield row.failure_message
    if row.state == PurchaseState.GRANTED:
        yield GRANTED_TEXT
    if row.state == PurchaseState.RESTORED:
        yield RESTORED_TEXT
    if row.refunded_cents:
        amount = money_text(row.refunded_cents, row.currency)
        if row.minutes_taken_back:
            yield REFUNDED_TEXT % {"amount": amount, "hours": hours_text(row.minutes_taken_back)}
        else:
            yield REFUNDED_MONEY_ONLY_TEXT % {"amount": amount}
    if row.minutes_held:
        yield ON_HOLD_TEXT % {"hours": hours_text(row.minutes_held)}
    elif row.disputed:
        yield DISPUTED_TEXT
    if row.minutes_lost:
        yield LOST_TEXT % {"hours": hours_text(row.minutes_lost)}
    if row.minutes_released:
        yield RELEASED_TEXT % {"hours": hours_text(row.minutes_released)}


SESSION_VOIDED = _("Session voided (%(reason)s)")
SESSION_DETAIL = _("%(subject)s with %(tutor)s")


class LotHistoryTable(PortalTable):
    occurred_at = WhenColumn(verbose_name=_("Date"), orderable=False)
    kind = tables.Column(verbose_name=_("What"), orderable=False)
    detail = tables.Column(empty_values=(), verbose_name=_("Details"), orderable=False)
    minutes = tables.Column(verbose_name=_("Change"), orderable=False, attrs=NUMERIC)

    class Meta:
        model = LedgerEntry
        fields = ["occurred_at", "kind", "detail", "minutes"]
        attrs = {"class": "data-table"}

    def render_kind(self, value, record):
        if record.kind == LedgerEntry.Kind.VOID:
            return SESSION_VOIDED % {"reason": record.usage.void_reason}
        return value

    def render_detail(self, record):
        if record.usage_id:
            return SESSION_DETAIL % {"subject": record.usage.subject, "tutor": record.usage.tutor}
        return record.reason or "—"

    def render_minutes(self, value):
        return signed_hours_text(value)


class ReceiptTable(PortalTable):
    issued_at = DayColumn(verbose_name=_("Date"))
    number = tables.Column(verbose_name=_("Number"))
    description = tables.Column(empty_values=(), verbose_name=_("Description"), orderable=False)
    amount = tables.Column(empty_values=(), verbose_name=_("Amount"), orderable=False, attrs=NUMERIC)
    download = tables.Column(empty_values=(), verbose_name="PDF", orderable=False)

    class Meta:
        model = Receipt
        fields = ["issued_at", "number", "description", "amount", "download"]
        order_by = "-issued_at"
        empty_text = _("No receipts yet. Every purchase and refund gets one.")
        attrs = {"class": "data-table"}

    caption = _("Your receipts and credit notes")
    order_issued_at = stable_order("issued_at")
    # "Recibo n.º R-2026-000123": the number's wording depends on the kind, so each is a sentence.
    NUMBER_TEXTS = {
        Receipt.Kind.RECEIPT: _("Receipt %(number)s"),
        Receipt.Kind.CREDIT_NOTE: _("Credit note %(number)s"),
        Receipt.Kind.CANCELLATION: _("Credit note cancellation %(number)s"),
    }

    def render_number(self, value, record):
        return self.NUMBER_TEXTS.get(record.kind, self.NUMBER_TEXTS[Receipt.Kind.RECEIPT]) % {"number": value}

    def render_description(self, record):
        return record.snapshot.get("description", "")

    def render_amount(self, record):
        sign = "−" if record.kind == Receipt.Kind.CREDIT_NOTE else ""
        return sign + money_text(record.snapshot["amount_cents"], record.snapshot["currency"])

    def render_download(self, record):
        url = reverse("student:receipt_download", args=[record.pk])
        label = gettext("Download %(file)s") % {"file": record.filename}
        return format_html('<a href="{}" download>{}</a>', url, label)


class NotificationTable(PortalTable):
    created_at = WhenColumn(verbose_name=_("When"), orderable=False)
    title = tables.Column(verbose_name=_("Alert"), orderable=False, attrs={"td": {"class": "wide"}})
    # Read, or the button that marks it read: the header is for screen readers (and the phone layout).
    state = tables.Column(empty_values=(), verbose_name=visually_hidden(_("Status")), orderable=False)

    class Meta:
        model = Notification
        fields = ["created_at", "title", "state"]
        empty_text = _("No alerts. We will tell you here when your hours run low or expire, and about payments.")
        attrs = {"class": "data-table"}
        row_attrs = {"class": lambda record: "is-unread" if record.read_at is None else ""}

    caption = _("Your alerts")

    def render_title(self, record):
        link = ""
        if record.link:
            link = format_html(
                ' <a href="{}">{}<span class="visually-hidden">: {}</span></a>',
                record.link,
                pgettext("alert link", "Open"),
                record.title,
            )
        return format_html("<strong>{}</strong><br>{}{}", record.title, record.body, link)

    def render_state(self, record):
        if record.read_at:
            return pgettext("alert", "Read")
        url = reverse("student:alert_mark_read", args=[record.pk])
        # Every row has this button: its name says which alert (WCAG 2.5.3: it starts with the words shown).
        return format_html(
            '<form method="post" action="{}" hx-post="{}" hx-target="#inbox" hx-swap="outerHTML">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<button type="submit" class="button button-secondary" aria-label="{}">{}</button></form>',
            url,
            url,
            get_token(self.request),
            gettext("Mark read: %(title)s, %(day)s")
            % {"title": record.title, "day": day_month_text(record.created_at)},
            gettext("Mark read"),
        )
