"""The console's tables. Sorting and paging are plain links that HTMX turns into table swaps."""

import django_tables2 as tables
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from alerts.models import Notification
from billing.formatting import (
    code_text,
    date_text,
    datetime_text,
    day_month_text,
    days_until,
    duration_text,
    hours_text,
    money_text,
    period_text,
    signed_hours_text,
)
from billing.models import (
    Account,
    AuditEntry,
    Dispute,
    FraudFlag,
    LedgerEntry,
    Payment,
    Refund,
    Subscription,
    WebhookEvent,
)
from portal.console.badges import DANGER, OK, WARN, badge, status_badge
from portal.student.tables import NotificationTable
from portal.tables import NUMERIC, DayColumn, PortalTable, UsageTable, WhenColumn, stable_order


def student_link(account):
    return format_html(
        '<a href="{}" hx-boost="false">{}</a>', reverse("console:student", args=[account.pk]), account.user.email
    )


def subscription_link(subscription_id, text=None):
    return format_html(
        '<a href="{}" hx-boost="false">{}</a>',
        reverse("console:subscription", args=[subscription_id]),
        text or gettext("Subscription %(number)s") % {"number": subscription_id},
    )


def payment_link(payment_id):
    return format_html(
        '<a href="{}" hx-boost="false">{}</a>',
        reverse("console:payment", args=[payment_id]),
        gettext("Payment %(number)s") % {"number": payment_id},
    )


def payment_link_with_student(payment):
    return format_html("{} · {}", payment_link(payment.pk), payment.account.user.email)


def period_range_text(start, end):
    """A subscription period as dates: "1 Dec 2026 – 1 Jan 2027"."""
    return f"{date_text(start)} – {date_text(end)}" if start and end else "—"


# A plan's price with its period: "€120.00 a month".
PRICE_PER_PERIOD = {"month": _("%(price)s a month"), "week": _("%(price)s a week")}


def price_per_period_text(plan):
    price = money_text(plan.price_cents, plan.currency)
    per_period = PRICE_PER_PERIOD.get(plan.interval)
    return per_period % {"price": price} if per_period else price


class PaymentRowsTable(PortalTable):
    """What every table of payments shows alike: the date linking to the payment, its amount and
    status (stable orderings)."""

    created_at = WhenColumn(verbose_name=_("Date"))
    amount_cents = tables.Column(verbose_name=_("Amount"), attrs=NUMERIC)
    status = tables.Column(verbose_name=_("Status"))

    order_created_at = stable_order("created_at")
    order_amount_cents = stable_order("amount_cents")
    order_status = stable_order("status")

    def render_created_at(self, value, record):
        url = reverse("console:payment", args=[record.pk])
        return format_html('<a href="{}" hx-boost="false">{}</a>', url, datetime_text(value))

    def render_amount_cents(self, value, record):
        return money_text(value, record.currency)

    def render_status(self, record):
        return status_badge(record)


class PaymentTable(PaymentRowsTable):
    student = tables.Column(accessor="account__user__email", verbose_name=_("Student"), orderable=False)
    plan = tables.Column(accessor="plan__name", verbose_name=_("Plan"), orderable=False)
    card = tables.Column(accessor="payment_method", verbose_name=_("Card"), orderable=False)
    stripe_payment_intent_id = tables.Column(verbose_name="PaymentIntent", orderable=False, default="—")

    class Meta:
        model = Payment
        fields = ["created_at", "student", "plan", "amount_cents", "status", "card", "stripe_payment_intent_id"]
        sequence = fields
        order_by = "-created_at"
        empty_text = _("No payments match.")
        attrs = {"class": "data-table"}

    caption = _("Payments")

    def render_student(self, record):
        return student_link(record.account)

    def render_plan(self, value, record):
        if not record.subscription_id:
            return value
        # A subscription invoice: what it paid for (a period, or an upgrade's extra hours) and when.
        period = f", {period_text(record.period_start, record.plan.interval)}" if record.period_start else ""
        return format_html(
            '{}<br><span class="muted small">{}{}</span>',
            value,
            subscription_link(record.subscription_id, record.get_kind_display()),
            period,
        )

    def render_card(self, value):
        return value.label

    def render_stripe_payment_intent_id(self, value):
        return format_html("<code>{}</code>", value)


class SubscriptionTable(PortalTable):
    id = tables.Column(verbose_name=_("Subscription"))
    student = tables.Column(accessor="account__user__email", verbose_name=_("Student"), orderable=False)
    plan = tables.Column(accessor="plan__name", verbose_name=_("Plan"), orderable=False)
    status = tables.Column(verbose_name=_("Status"))
    current_period_end = tables.Column(verbose_name=_("Renews or ends"))
    amount = tables.Column(
        accessor="plan__price_cents", verbose_name=_("Amount per period"), attrs=NUMERIC, orderable=False
    )
    created_at = WhenColumn(verbose_name=_("Started"))

    class Meta:
        model = Subscription
        fields = ["id", "student", "plan", "status", "current_period_end", "amount", "created_at"]
        order_by = "-created_at"
        empty_text = _("No subscriptions match.")
        attrs = {"class": "data-table"}

    caption = _("Subscriptions")
    order_id = stable_order("id")
    order_status = stable_order("status")
    order_current_period_end = stable_order("current_period_end")
    order_created_at = stable_order("created_at")

    def render_id(self, value):
        return subscription_link(value)

    def render_student(self, record):
        name = record.account.user.get_full_name()
        return format_html(
            "{}{}",
            student_link(record.account),
            format_html('<br><span class="muted small">{}</span>', name) if name else "",
        )

    def render_status(self, record):
        return status_badge(record)

    def render_current_period_end(self, value, record):
        return subscription_period_end_text(record)

    def render_amount(self, record):
        return price_per_period_text(record.plan)


def subscription_period_end_text(subscription):
    """When a subscription next renews, or when it ends or ended, in words."""
    if subscription.ended:
        if not subscription.ended_at:
            return pgettext("subscription", "Ended")
        return gettext("Ended %(date)s") % {"date": date_text(subscription.ended_at)}
    if not subscription.current_period_end:
        return "—"
    period_end = {"date": date_text(subscription.current_period_end)}
    if subscription.cancel_at_period_end:
        return gettext("Ends %(date)s") % period_end
    if subscription.status in Subscription.RUNNING:
        return gettext("Renews %(date)s") % period_end
    return gettext("Period ends %(date)s") % period_end


class SubscriptionPaymentTable(PaymentRowsTable):
    """A subscription's invoices: one payment each, for a period or for an upgrade."""

    kind = tables.Column(verbose_name=_("For"), orderable=False)
    period = tables.Column(empty_values=(), verbose_name=_("Period"), orderable=False)
    minutes = tables.Column(verbose_name=_("Hours"), attrs=NUMERIC, orderable=False)
    stripe_invoice_id = tables.Column(verbose_name=_("Invoice"), orderable=False, default="—")

    class Meta:
        model = Payment
        fields = ["created_at", "kind", "period", "minutes", "amount_cents", "status", "stripe_invoice_id"]
        sequence = fields
        order_by = "-created_at"
        empty_text = _("No invoices yet.")
        attrs = {"class": "data-table"}

    caption = _("Invoices")

    def render_kind(self, record):
        return record.get_kind_display()

    def render_period(self, record):
        return period_range_text(record.period_start, record.period_end)

    def render_minutes(self, value):
        return hours_text(value)

    def render_stripe_invoice_id(self, value):
        return format_html("<code>{}</code>", value)


class RefundTable(PortalTable):
    created_at = WhenColumn(verbose_name=_("Date"))
    payment = tables.Column(verbose_name=_("Payment"), orderable=False)
    amount_cents = tables.Column(verbose_name=_("Amount"), attrs=NUMERIC)
    minutes_reversed = tables.Column(verbose_name=_("Hours taken back"), attrs=NUMERIC)
    status = tables.Column(verbose_name=_("Status"))
    reason = tables.Column(verbose_name=_("Reason"), default="—", orderable=False)

    class Meta:
        model = Refund
        fields = ["created_at", "payment", "amount_cents", "minutes_reversed", "status", "reason"]
        order_by = "-created_at"
        empty_text = _("No refunds.")
        attrs = {"class": "data-table"}

    caption = _("Refunds")
    order_created_at = stable_order("created_at")

    def render_payment(self, value):
        return payment_link_with_student(value)

    def render_amount_cents(self, value, record):
        return money_text(value, record.currency)

    def render_minutes_reversed(self, value):
        return hours_text(value)

    def render_status(self, record):
        return status_badge(record)


class DisputeTable(PortalTable):
    created_at = WhenColumn(verbose_name=_("Opened"))
    payment = tables.Column(verbose_name=_("Payment"), orderable=False)
    amount_cents = tables.Column(verbose_name=_("Amount"), attrs=NUMERIC)
    reason = tables.Column(verbose_name=_("Reason"), default="—")
    status = tables.Column(verbose_name=_("Status"))
    evidence_due_by = tables.Column(verbose_name=_("Evidence due"))

    class Meta:
        model = Dispute
        fields = ["created_at", "payment", "amount_cents", "reason", "status", "evidence_due_by"]
        order_by = "evidence_due_by"
        empty_text = _("No disputes.")
        attrs = {"class": "data-table"}

    caption = _("Disputes")
    order_created_at = stable_order("created_at")
    order_evidence_due_by = stable_order("evidence_due_by")

    def render_created_at(self, value, record):
        url = reverse("console:dispute", args=[record.pk])
        return format_html('<a href="{}" hx-boost="false">{}</a>', url, datetime_text(value))

    def render_payment(self, value):
        return payment_link_with_student(value)

    def render_amount_cents(self, value, record):
        return money_text(value, record.currency)

    def render_status(self, record):
        return status_badge(record)

    def render_evidence_due_by(self, value, record):
        if record.closed or record.evidence_submitted_at:
            return date_text(value)
        days = days_until(value)
        if days < 0:
            return format_html("{} {}", date_text(value), badge(DANGER, gettext("past due")))
        if days == 0:
            label = gettext("due today")
        else:
            label = ngettext("%(days)d day left", "%(days)d days left", days) % {"days": days}
        return format_html("{} {}", date_text(value), badge(WARN if days > 3 else DANGER, label))


class FraudFlagTable(PortalTable):
    created_at = WhenColumn(verbose_name=_("Raised"), orderable=False)
    account = tables.Column(verbose_name=_("Student"), orderable=False)
    rule = tables.Column(verbose_name=_("Rule"), orderable=False)
    evidence = tables.Column(verbose_name=_("Evidence"), orderable=False, attrs={"td": {"class": "wide"}})
    status = tables.Column(verbose_name=_("Status"), orderable=False)
    actions = tables.TemplateColumn(
        template_name="console/_flag_actions.html", verbose_name=_("Actions"), orderable=False, empty_values=()
    )

    class Meta:
        model = FraudFlag
        fields = ["created_at", "account", "rule", "evidence", "status", "actions"]
        empty_text = _("No fraud flags match.")
        attrs = {"class": "data-table"}
        row_attrs = {"id": lambda record: f"flag-{record.pk}"}

    caption = _("Fraud flags")

    def render_account(self, value, record):
        blocked = format_html(" {}", badge(DANGER, pgettext("student", "blocked"))) if value.blocked_at else ""
        return format_html("{}{}", student_link(value), blocked)

    def render_rule(self, value, record):
        detail = f" ({record.fraud_type})" if record.rule == FraudFlag.Rule.RADAR else ""
        payment = format_html("<br>{}", payment_link(record.payment_id)) if record.payment_id else ""
        return format_html("{}{}{}", record.get_rule_display(), detail, payment)

    def render_evidence(self, value):
        return format_html_join(
            "",
            '<div><span class="muted">{}:</span> {}</div>',
            ((code_text(key), _evidence_value(key, item)) for key, item in value.items()),
        )

    def render_status(self, record):
        return status_badge(record)


def _evidence_value(key, item):
    if isinstance(item, list | tuple):
        return ", ".join(str(part) for part in item)
    if key.endswith("_at") and isinstance(item, str):
        # Moments are kept in the evidence as ISO text (UTC): shown in local time like the rest.
        moment = parse_datetime(item)
        return datetime_text(moment, seconds=True) if moment else item
    return item


class WebhookEventTable(PortalTable):
    received_at = WhenColumn(verbose_name=_("Received"))
    type = tables.Column(verbose_name=_("Type"))
    status = tables.Column(verbose_name=_("Status"))
    attempts = tables.Column(verbose_name=_("Attempts"), attrs=NUMERIC)
    processing_ms = tables.Column(verbose_name=_("Time"), attrs=NUMERIC, default="—")
    last_error = tables.Column(verbose_name=_("Error"), orderable=False, default="", attrs={"td": {"class": "wide"}})
    actions = tables.TemplateColumn(
        template_name="console/_event_actions.html", verbose_name=_("Actions"), orderable=False, empty_values=()
    )

    class Meta:
        model = WebhookEvent
        fields = ["received_at", "type", "status", "attempts", "processing_ms", "last_error", "actions"]
        order_by = "-received_at"
        empty_text = _("No events match.")
        attrs = {"class": "data-table"}
        row_attrs = {"id": lambda record: f"event-{record.pk}"}

    caption = _("Stripe events")
    order_received_at = stable_order("received_at")
    order_type = stable_order("type")
    order_status = stable_order("status")
    order_attempts = stable_order("attempts")

    def render_received_at(self, value, record):
        url = reverse("console:webhook", args=[record.pk])
        return format_html('<a href="{}" hx-boost="false">{}</a>', url, datetime_text(value, seconds=True))

    def render_type(self, value, record):
        return format_html("<code>{}</code><br><span class='muted small'>{}</span>", value, record.stripe_event_id)

    def render_status(self, record):
        return status_badge(record)

    def render_processing_ms(self, value):
        return f"{value} ms"

    def render_last_error(self, value):
        last_line = value.strip().splitlines()[-1] if value.strip() else ""
        return last_line[:160]


class StudentTable(PortalTable):
    email = tables.Column(accessor="user__email", verbose_name=_("Student"))
    balance_minutes = tables.Column(verbose_name=_("Balance"), attrs=NUMERIC)
    created_at = DayColumn(verbose_name=_("Joined"))
    blocked_at = tables.Column(verbose_name=_("Buying"), default="")

    class Meta:
        model = Account
        fields = ["email", "balance_minutes", "created_at", "blocked_at"]
        order_by = "user__email"
        empty_text = _("No students match.")
        attrs = {"class": "data-table"}

    caption = _("Students")
    order_balance_minutes = stable_order("balance_minutes")
    order_created_at = stable_order("created_at")

    def render_email(self, record):
        return student_link(record)

    def render_balance_minutes(self, value):
        return hours_text(value)

    def render_blocked_at(self, value):
        if value:
            return badge(DANGER, pgettext("buying", "blocked"))
        return badge(OK, pgettext("buying", "allowed"))


class LedgerTable(PortalTable):
    occurred_at = WhenColumn(verbose_name=_("Date"), orderable=False)
    kind = tables.Column(verbose_name=_("What"), orderable=False)
    lot = tables.Column(verbose_name=_("Lot"), orderable=False)
    detail = tables.Column(empty_values=(), verbose_name=_("Details"), orderable=False)
    minutes = tables.Column(verbose_name=_("Change"), orderable=False, attrs=NUMERIC)
    balance_after = tables.Column(verbose_name=_("Balance"), orderable=False, attrs=NUMERIC)

    class Meta:
        model = LedgerEntry
        fields = ["occurred_at", "kind", "lot", "detail", "minutes", "balance_after"]
        empty_text = _("No ledger entries.")
        attrs = {"class": "data-table"}

    caption = _("Ledger")

    def render_lot(self, value):
        return f"{value.name} #{value.pk}"

    def render_detail(self, record):
        if record.usage_id:
            return gettext("%(subject)s with %(tutor)s, %(duration)s") % {
                "subject": record.usage.subject,
                "tutor": record.usage.tutor,
                "duration": duration_text(record.usage.minutes),
            }
        if record.actor_id:
            return gettext("%(reason)s (by %(email)s)") % {"reason": record.reason or "—", "email": record.actor.email}
        return record.reason or "—"

    def render_minutes(self, value):
        return signed_hours_text(value)

    def render_balance_after(self, value):
        return hours_text(value)


class SessionTable(UsageTable):
    """A student's sessions as staff see them, with a Void button on each session the staff member
    may still void: not on a voided one, and for Support only on those recorded since `void_since`
    (None: every one, for Finance)."""

    actions = tables.Column(empty_values=(), verbose_name=_("Actions"), orderable=False)

    class Meta(UsageTable.Meta):
        fields = [*UsageTable.Meta.fields, "actions"]
        empty_text = _("No sessions recorded.")

    caption = _("Sessions")

    def __init__(self, *args, void_since=None, **kwargs):
        self.void_since = void_since
        super().__init__(*args, **kwargs)

    def render_actions(self, record):
        if record.voided_at is not None or (self.void_since is not None and record.recorded_at < self.void_since):
            return ""
        url = reverse("console:usage_void", args=[record.account_id, record.pk])
        # The table's card swaps itself (outerHTML) on sorting: this link swaps the dialog's content only.
        # The accessible name starts with the visible word (WCAG 2.5.3) and says which session it voids.
        return format_html(
            '<a class="button button-secondary" href="{}" hx-get="{}" hx-target="#dialog-body" hx-swap="innerHTML" '
            'aria-label="{}">{}</a>',
            url,
            url,
            gettext("Void the session of %(when)s") % {"when": datetime_text(record.occurred_at)},
            gettext("Void"),
        )


class AuditTable(PortalTable):
    created_at = WhenColumn(verbose_name=_("When"), orderable=False)
    actor_email = tables.Column(verbose_name=_("Staff"), orderable=False)
    action = tables.Column(verbose_name=_("Action"), orderable=False)
    target_label = tables.Column(verbose_name=_("Target"), orderable=False)
    change = tables.Column(
        empty_values=(), verbose_name=_("Before → after"), orderable=False, attrs={"td": {"class": "wide"}}
    )
    reason = tables.Column(verbose_name=_("Reason"), orderable=False, default="—")
    ip_address = tables.Column(verbose_name=_("IP"), orderable=False, default="—")

    class Meta:
        model = AuditEntry
        fields = ["created_at", "actor_email", "action", "target_label", "change", "reason", "ip_address"]
        empty_text = _("No audit entries.")
        attrs = {"class": "data-table"}

    caption = _("Audit log")

    def render_action(self, value):
        return format_html("<code>{}</code>", value)

    def render_target_label(self, value, record):
        url = audit_target_url(record)
        return format_html('<a href="{}" hx-boost="false">{}</a>', url, value) if url else value

    def render_change(self, record):
        before = ", ".join(f"{key}: {value}" for key, value in record.before.items())
        after = ", ".join(f"{key}: {value}" for key, value in record.after.items())
        if not before and not after:
            return "—"
        return f"{before or '—'} → {after or '—'}"


def audit_target_url(entry):
    if entry.payment_id:
        return reverse("console:payment", args=[entry.payment_id])
    if entry.target_type == "dispute":
        return reverse("console:dispute", args=[entry.target_id])
    if entry.target_type == "webhookevent":
        return reverse("console:webhook", args=[entry.target_id])
    if entry.target_type == "subscription":
        return reverse("console:subscription", args=[entry.target_id])
    if entry.account_id:
        return reverse("console:student", args=[entry.account_id])
    return ""


class StaffNotificationTable(NotificationTable):
    """The console's inbox: the student inbox's columns, with links that name their subject and a
    "mark read" of the console's own."""

    LINK_TEXTS = {
        Notification.Kind.STAFF_DISPUTE_OPENED: _("Open the dispute"),
        Notification.Kind.STAFF_EVIDENCE_DUE: _("Open the dispute"),
        Notification.Kind.STAFF_FRAUD_FLAG: _("Open the flag"),
        Notification.Kind.STAFF_WEBHOOK_FAILED: _("Open the failed events"),
        Notification.Kind.STAFF_PAYMENT_STUCK: _("Open the payment"),
        Notification.Kind.STAFF_JOB_STALE: _("Open the System page"),
    }
    LINK_TEXT = pgettext_lazy("alert link", "Open")

    class Meta(NotificationTable.Meta):
        empty_text = _("No alerts. New disputes, fraud flags, failing webhook events and stuck payments show here.")

    caption = _("Your staff alerts")

    def render_title(self, record):
        text = self.LINK_TEXTS.get(record.kind, self.LINK_TEXT)
        link = format_html(' <a href="{}" hx-boost="false">{}</a>', record.link, text) if record.link else ""
        return format_html("<strong>{}</strong><br>{}{}", record.title, record.body, link)

    def render_state(self, record):
        if record.read_at:
            return pgettext("alert", "Read")
        url = reverse("console:alerts_mark_read")
        return format_html(
            '<form method="post" action="{}" hx-post="{}" hx-target="#inbox" hx-swap="outerHTML">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<input type="hidden" name="alert" value="{}">'
            '<button type="submit" class="button button-secondary" aria-label="{}">{}</button></form>',
            url,
            url,
            get_token(self.request),
            record.pk,
            gettext("Mark read: %(title)s, %(day)s")
            % {"title": record.title, "day": day_month_text(record.created_at)},
            gettext("Mark read"),
        )
