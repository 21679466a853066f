"""What the staff console reads: the overview's figures and a payment's (or subscription's) whole story.

Each figure is one aggregate query over an indexed range, so the overview costs the same number of
queries however many payments there are; the payment figures are read from an index alone (see
Payment.Meta.indexes).
"""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import (
    AuditEntry,
    Dispute,
    FraudFlag,
    LedgerEntry,
    Payment,
    Plan,
    Receipt,
    Refund,
    Subscription,
    WebhookEvent,
)

FAILED_EVENT_STATUSES = [WebhookEvent.Status.FAILED, WebhookEvent.Status.ORPHAN]
# What the console counts as revenue, on the overview and in the accounting exports (billing.accounting):
# a sale is a succeeded payment, for its whole amount, at the moment it was made (created_at); money
# given back counts apart, when it was asked for: every refund that has not failed or been canceled.
SALE = Q(status=Payment.Status.SUCCEEDED)
REFUND_COUNTED = ~Q(status__in=Refund.UNDONE)
# Stripe's events about a subscription or its invoices: a subscription's timeline looks only at these.
SUBSCRIPTION_EVENT_TYPES = ("customer.subscription.", "invoice.")
# A subscription's timeline shows its newest events up to this many (a weekly plan makes a handful a
# week; a subscription years old would otherwise read its whole history on every visit).
SUBSCRIPTION_TIMELINE_EVENTS = 200


@dataclass
class Overview:
    today: object
    revenue_today_cents: int
    revenue_30d_cents: int
    succeeded_30d: int
    failed_30d: int
    declines: list
    refunds_30d: int
    refunds_30d_cents: int
    open_disputes: int
    next_evidence_due: datetime | None
    open_flags: int
    events_failed: int
    events_waiting: int
    in_flight: int
    needs_review: int
    # Complimentary hours staff gave (no payment, no receipt): not sales, so never in the revenue.
    grants_30d: int = 0
    granted_minutes_30d: int = 0
    daily_revenue: list = field(default_factory=list)

    @property
    def success_rate(self):
        """Succeeded payments among those that finished, in whole percent (None with no payments)."""
        finished = self.succeeded_30d + self.failed_30d
        return round(100 * self.succeeded_30d / finished) if finished else None

    @property
    def since(self):
        return self.today - timedelta(days=29)


def console_overview(*, now=None):
    now = now or timezone.now()
    today = timezone.localdate(now)
    start_of_today = timezone.make_aware(datetime.combine(today, time.min))
    since = start_of_today - timedelta(days=29)
    recent = Payment.objects.filter(created_at__gte=since)
    # Only succeeded and failed payments count in these figures: naming them lets the database read
    # every figure from the (status, created_at, ...) index alone, however many payments are in flight.
    totals = recent.filter(status__in=[Payment.Status.SUCCEEDED, Payment.Status.FAILED]).aggregate(
        revenue_30d=Sum("amount_cents", filter=SALE),
        revenue_today=Sum("amount_cents", filter=SALE & Q(created_at__gte=start_of_today)),
        succeeded=Count("id", filter=SALE),
        failed=Count("id", filter=Q(status=Payment.Status.FAILED)),
    )
    declines = list(
        recent.filter(status=Payment.Status.FAILED)
        .values("failure_code")
        .annotate(count=Count("id"))
        .order_by("-count", "failure_code")[:6]
    )
    refunds = Refund.objects.filter(REFUND_COUNTED, created_at__gte=since)
    refund_totals = refunds.aggregate(count=Count("id"), cents=Sum("amount_cents"))
    disputes = Dispute.objects.filter(closed=False).aggregate(
        count=Count("id"), next_due=Min("evidence_due_by", filter=Q(evidence_due_by__gte=now))
    )
    grants = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.GRANT, occurred_at__gte=since).aggregate(
        count=Count("id"), minutes=Sum("minutes")
    )
    events = events_unapplied()
    unsettled = payments_unsettled()
    return Overview(
        today=today,
        revenue_today_cents=totals["revenue_today"] or 0,
        revenue_30d_cents=totals["revenue_30d"] or 0,
        succeeded_30d=totals["succeeded"],
        failed_30d=totals["failed"],
        declines=declines,
        refunds_30d=refund_totals["count"],
        refunds_30d_cents=refund_totals["cents"] or 0,
        open_disputes=disputes["count"],
        next_evidence_due=disputes["next_due"],
        open_flags=FraudFlag.objects.filter(status=FraudFlag.Status.OPEN).count(),
        events_failed=events["failed"],
        events_waiting=events["waiting"],
        in_flight=unsettled["in_flight"],
        needs_review=unsettled["needs_review"],
        grants_30d=grants["count"],
        granted_minutes_30d=grants["minutes"] or 0,
        daily_revenue=_daily_revenue(recent, today),
    )


def events_unapplied():
    """{"failed": ..., "waiting": ...}: Stripe events that failed (or found nothing to apply to) and
    those waiting for their object, for the overview and the System page."""
    return WebhookEvent.objects.filter(status__in=[*FAILED_EVENT_STATUSES, WebhookEvent.Status.WAITING]).aggregate(
        failed=Count("id", filter=Q(status__in=FAILED_EVENT_STATUSES)),
        waiting=Count("id", filter=Q(status=WebhookEvent.Status.WAITING)),
    )


def payments_unsettled():
    """{"in_flight": ..., "needs_review": ...}: payments without their outcome yet, for the overview and
    the System page."""
    return Payment.objects.filter(status__in=[*Payment.IN_FLIGHT, Payment.Status.NEEDS_REVIEW]).aggregate(
        in_flight=Count("id", filter=Q(status__in=Payment.IN_FLIGHT)),
        needs_review=Count("id", filter=Q(status=Payment.Status.NEEDS_REVIEW)),
    )


def _daily_revenue(recent, today):
    """(date, cents) for each of the last 30 days, days without revenue included as 0."""
    by_day = dict(
        recent.filter(SALE)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(cents=Sum("amount_cents"))
        .values_list("day", "cents")
    )
    days = [today - timedelta(days=offset) for offset in range(29, -1, -1)]
    return [(day, by_day.get(day, 0)) for day in days]


# A weekly plan's price per month: 52 weeks a year over 12 months.
WEEKS_PER_YEAR, MONTHS_PER_YEAR = 52, 12


@dataclass(frozen=True)
class SubscriptionFigures:
    running: int
    overdue: int
    monthly_revenue: list  # [(currency, cents)], one per currency with running subscriptions


def subscription_figures():
    """The overview's subscription figures, in one query: how many subscriptions run (hours arrive
    each period), how many are overdue (a payment owed and not made), and the monthly recurring
    revenue of the running ones, per currency.

    A subscription's monthly revenue is its plan's price per month: a monthly plan's price, a weekly
    plan's price x 52 / 12. Weekly prices are summed per currency first and rounded once to the
    nearest cent (x 52 / 12 never leaves exactly half a cent), so the total is right to the cent
    however many subscriptions there are, not off by a rounding per subscription. It is the plan's
    current price, and a subscription that cancels at period end counts until it ends."""
    rows = (
        Subscription.objects.filter(status__in=Subscription.RUNNING | Subscription.OVERDUE)
        .values("plan__currency", "plan__interval")
        .annotate(
            running=Count("id", filter=Q(status__in=Subscription.RUNNING)),
            overdue=Count("id", filter=Q(status__in=Subscription.OVERDUE)),
            cents=Sum("plan__price_cents", filter=Q(status__in=Subscription.RUNNING)),
        )
        .order_by("plan__currency", "plan__interval")
    )
    monthly, weekly, running, overdue = {}, {}, 0, 0
    for row in rows:
        running, overdue = running + row["running"], overdue + row["overdue"]
        by_currency = weekly if row["plan__interval"] == Plan.Interval.WEEK else monthly
        currency = row["plan__currency"]
        by_currency[currency] = by_currency.get(currency, 0) + (row["cents"] or 0)
    revenue = []
    for currency in sorted(set(monthly) | set(weekly)):
        cents = monthly.get(currency, 0) + _per_month_half_up(weekly.get(currency, 0))
        if cents:
            revenue.append((currency, cents))
    return SubscriptionFigures(running=running, overdue=overdue, monthly_revenue=revenue)


def _per_month_half_up(weekly_cents):
    """Weekly cents as monthly cents: x 52 / 12, rounded to the nearest whole cent."""
    return (weekly_cents * WEEKS_PER_YEAR + MONTHS_PER_YEAR // 2) // MONTHS_PER_YEAR


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    obj: object = None


def payment_timeline(*, payment):
    """Everything that happened to a payment, oldest first: the attempt and its outcome, Stripe's
    events, hours moved on its lot, the receipt, refunds, disputes, fraud flags and staff actions."""
    items = [
        TimelineItem(
            payment.created_at, "attempt", _("%(kind)s attempt started") % {"kind": payment.get_kind_display()}
        )
    ]
    if payment.status == Payment.Status.SUCCEEDED:
        items.append(TimelineItem(payment.settled_at or payment.updated_at, "succeeded", _("Payment succeeded")))
    elif payment.status in (Payment.Status.FAILED, Payment.Status.NEEDS_REVIEW, Payment.Status.RESOLVED):
        detail = " ".join(part for part in (payment.failure_code, payment.failure_message) if part)
        title = _("Payment failed") if payment.status == Payment.Status.FAILED else _("Payment left for staff review")
        items.append(TimelineItem(payment.settled_at or payment.updated_at, "failed", title, detail))
    if payment.stripe_payment_intent_id:
        for event in WebhookEvent.objects.filter(payment_intent_id=payment.stripe_payment_intent_id):
            items.append(_event_item(event))
    if payment.lot_id:
        for entry in LedgerEntry.objects.filter(lot_id=payment.lot_id).exclude(kind=LedgerEntry.Kind.USAGE):
            title = _("Hours: %(kind)s") % {"kind": entry.get_kind_display()}
            items.append(TimelineItem(entry.occurred_at, "ledger", title, entry.reason, obj=entry))
    for receipt in payment_documents(payment):
        items.append(
            TimelineItem(receipt.issued_at, "receipt", f"{receipt.get_kind_display()} {receipt.number}", obj=receipt)
        )
    for refund in payment.refunds.all():
        title = _("Refund (%(status)s)") % {"status": refund.get_status_display().lower()}
        items.append(TimelineItem(refund.created_at, "refund", title, refund.reason, obj=refund))
    for dispute in payment.disputes.all():
        items.append(
            TimelineItem(
                dispute.created_at,
                "dispute",
                _("Dispute (%(status)s)") % {"status": dispute.get_status_display().lower()},
                dispute.reason,
                obj=dispute,
            )
        )
    for flag in payment.fraud_flags.all():
        title = _("Fraud flag: %(rule)s") % {"rule": flag.get_rule_display()}
        items.append(TimelineItem(flag.created_at, "flag", title, flag.get_status_display(), obj=flag))
    for entry in AuditEntry.objects.filter(payment=payment):
        items.append(
            TimelineItem(entry.created_at, "audit", f"{entry.actor_email}: {entry.action}", entry.reason, obj=entry)
        )
    return sorted(items, key=lambda item: item.at)


def _event_item(event):
    title = _("Stripe event %(type)s") % {"type": event.type}
    return TimelineItem(event.received_at, "event", title, event.get_status_display(), obj=event)


def payment_documents(payment):
    """The payment's receipt, the credit notes of its refunds and their cancellations."""
    of_payment = Q(payment=payment) | Q(refund__payment=payment) | Q(cancels__refund__payment=payment)
    return Receipt.objects.filter(of_payment).order_by("issued_at", "id")


def subscription_timeline(*, subscription):
    """What happened to a subscription, oldest first: its start and end, Stripe's events about it or
    its invoices, and staff actions on it.

    Events are matched by the object they carry (the subscription, or an invoice one of its payments
    records), among the subscription and invoice events received since it was made, and only the
    newest SUBSCRIPTION_TIMELINE_EVENTS: the page costs the same however long the log grows."""
    started = _("Subscription to %(plan)s started") % {"plan": subscription.plan.name}
    items = [TimelineItem(subscription.created_at, "attempt", started)]
    if subscription.ended_at:
        ended = _("Subscription %(status)s") % {"status": subscription.get_status_display().lower()}
        items.append(TimelineItem(subscription.ended_at, "failed", ended))
    object_ids = [
        *([subscription.stripe_subscription_id] if subscription.stripe_subscription_id else []),
        *subscription.payments.exclude(stripe_invoice_id=None).values_list("stripe_invoice_id", flat=True),
    ]
    if object_ids:
        of_type = Q()
        for prefix in SUBSCRIPTION_EVENT_TYPES:
            of_type |= Q(type__startswith=prefix)
        events = (
            WebhookEvent.objects.defer("payload")
            .filter(of_type, received_at__gte=subscription.created_at, payload__data__object__id__in=object_ids)
            .order_by("-received_at", "-id")[:SUBSCRIPTION_TIMELINE_EVENTS]
        )
        items += [_event_item(event) for event in events]
    for entry in AuditEntry.objects.filter(target_type="subscription", target_id=str(subscription.pk)):
        items.append(
            TimelineItem(entry.created_at, "audit", f"{entry.actor_email}: {entry.action}", entry.reason, obj=entry)
        )
    return sorted(items, key=lambda item: item.at)
