"""Subscriptions: the table, a subscription's whole record, and the staff's cancel and resume (Finance,
with a reason; billing.subscriptions audits them)."""

from functools import partial

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.http import require_GET, require_http_methods

from billing import subscriptions
from billing.formatting import date_text, money_text
from billing.models import Lot, Refund, Subscription
from billing.reports import subscription_timeline
from portal.console.access import console_view
from portal.console.filters import SubscriptionFilter
from portal.console.tables import SubscriptionPaymentTable, SubscriptionTable, subscription_period_end_text
from portal.console.views.common import list_page, reason_action, table_page

INVOICES_TABLE = "invoices-table"
# The subscription page lists its newest lots and refunds up to this many (a weekly plan makes 52
# lots a year); the student's page and each payment's page have the rest.
SECTION_ROWS = 24

# English here, for the tests to find; translated when shown.
CANCEL_NOW_DONE = gettext_noop("Subscription ended. Hours already granted stay until they expire.")
CANCEL_AT_PERIOD_END_DONE = gettext_noop("The subscription will end at the end of its current period.")
RESUME_DONE = gettext_noop("Subscription resumed: it renews at the end of its current period.")


@console_view
@require_GET
def subscription_list(request):
    found = SubscriptionFilter(request.GET, queryset=Subscription.objects.select_related("account__user", "plan"))
    table = table_page(request, SubscriptionTable(found.qs))
    return list_page(request, title=gettext("Subscriptions"), table=table, filterset=found)


@console_view
@require_GET
def subscription_detail(request, subscription_id):
    subscription = get_object_or_404(
        Subscription.objects.select_related("account__user", "plan", "payment_method"), pk=subscription_id
    )
    invoices = SubscriptionPaymentTable(subscription.payments.select_related("plan"), prefix="invoices-")
    if request.htmx and request.htmx.target == INVOICES_TABLE:
        # The invoices table was sorted or paged: only that table comes back.
        table = table_page(request, invoices)
        return render(request, "portal/_swappable_table.html", {"table": table, "fragment_id": INVOICES_TABLE})
    lots = Lot.objects.filter(payment__subscription=subscription).select_related("payment").order_by("-purchased_at")
    refunds = Refund.objects.filter(payment__subscription=subscription).order_by("-created_at", "-id")
    context = {
        "subscription": subscription,
        "period_end": subscription_period_end_text(subscription),
        "overdue": subscription.status in Subscription.OVERDUE,
        "invoices_table": table_page(request, invoices),
        "lots": lots[:SECTION_ROWS],
        "refunds": refunds[:SECTION_ROWS],
        "timeline": subscription_timeline(subscription=subscription),
        "actions": staff_actions(subscription),
    }
    return render(request, "console/subscription_detail.html", context)


def staff_actions(subscription):
    """The staff actions the subscription is in a state for (billing.subscriptions refuses the others
    anyway): ending it now while it lives at Stripe; cancelling at period end, or undoing that
    before the period is over."""
    if subscription.ended or not subscription.stripe_subscription_id:
        return set()
    if not subscription.cancel_at_period_end:
        return {"cancel_now", "cancel_at_period_end"}
    period_over = subscription.current_period_end is not None and subscription.current_period_end <= timezone.now()
    return {"cancel_now"} if period_over else {"cancel_now", "resume"}


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def subscription_cancel_now(request, subscription_id):
    subscription = _subscription(subscription_id)
    return reason_action(
        request,
        partial(subscriptions.subscription_cancel_now, subscription=subscription),
        done=gettext(CANCEL_NOW_DONE),
        redirect_to=_subscription_url(subscription),
        texts={
            "title": gettext("End subscription %(number)s now") % {"number": subscription.pk},
            "intro": gettext(
                "%(email)s's subscription to %(plan)s ends at once: no more invoices and no more hours. Hours "
                "already granted stay until they expire (refund a period from its payment to take them back). This "
                "cannot be undone."
            )
            % {"email": subscription.account.user.email, "plan": subscription.plan.name},
            "submit": gettext("End the subscription now"),
            "danger": True,
        },
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def subscription_cancel_at_period_end(request, subscription_id):
    subscription = _subscription(subscription_id)
    return reason_action(
        request,
        partial(subscriptions.subscription_cancel_at_period_end, subscription=subscription),
        done=gettext(CANCEL_AT_PERIOD_END_DONE),
        redirect_to=_subscription_url(subscription),
        texts={
            "title": gettext("Cancel subscription %(number)s at the end of its period") % {"number": subscription.pk},
            "intro": _period_end_text(
                subscription,
                gettext(
                    "%(email)s keeps the current period and its hours; the subscription stops renewing and nothing "
                    "more is charged after %(date)s. It can be resumed until then."
                ),
                gettext(
                    "%(email)s keeps the current period and its hours; the subscription stops renewing and nothing "
                    "more is charged after the end of the period. It can be resumed until then."
                ),
            ),
            "submit": gettext("Cancel at period end"),
            "danger": True,
        },
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def subscription_resume(request, subscription_id):
    subscription = _subscription(subscription_id)
    plan = subscription.plan
    return reason_action(
        request,
        partial(subscriptions.subscription_resume, subscription=subscription),
        done=gettext(RESUME_DONE),
        redirect_to=_subscription_url(subscription),
        texts={
            "title": gettext("Resume subscription %(number)s") % {"number": subscription.pk},
            "intro": _period_end_text(
                subscription,
                gettext("It renews again on %(date)s, charging %(amount)s to %(email)s's card."),
                gettext("It renews again on the end of the period, charging %(amount)s to %(email)s's card."),
                amount=money_text(plan.price_cents, plan.currency),
            ),
            "submit": gettext("Resume the subscription"),
        },
    )


def _subscription(subscription_id):
    return get_object_or_404(Subscription.objects.select_related("account__user", "plan"), pk=subscription_id)


def _period_end_text(subscription, dated, undated, **words):
    """`dated` with the end of the subscription's period (%(date)s), or `undated` when it has none; both
    also name the student (%(email)s) and `words`."""
    words["email"] = subscription.account.user.email
    if subscription.current_period_end:
        return dated % (words | {"date": date_text(subscription.current_period_end)})
    return undated % words


def _subscription_url(subscription):
    return reverse("console:subscription", args=[subscription.pk])
