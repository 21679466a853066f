"""The student's pages: a thin layer over billing's services and selectors."""

import logging
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponseNotModified, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event

from alerts.models import Notification
from alerts.notifications import notification_mark_read, payment_notify
from alerts.selectors import inbox, most_urgent_unread, unread_count
from billing import cards, payments, subscriptions
from billing.errors import AccountBlocked, BillingError, ProviderAnswerUnreadable, ProviderUnavailable
from billing.formatting import date_text, hours_text, money_text
from billing.ledger import account_open
from billing.models import Account, Payment, Subscription
from billing.selectors import (
    balance_summary,
    cards_for_account,
    cards_of,
    lot_history,
    lots_of,
    payments_of,
    plans_for_sale,
    purchase_history,
    receipts_for_account,
    receipts_of,
    subscription_invoices,
    subscriptions_of,
    usage_history,
)
from portal.downloads import receipt_file
from portal.live import live_answer, live_context, live_etag, live_unchanged
from portal.page_cache import page_cached, plans_version
from portal.ratelimits import rate_limited
from portal.student.access import student_view
from portal.student.forms import (
    CardSaveForm,
    DashboardQuery,
    PayForm,
    PaymentCheckQuery,
    PlanChangeForm,
    PurchaseHistoryQuery,
    SubscribeForm,
    SubscriptionCardForm,
)
from portal.student.tables import LotHistoryTable, NotificationTable, PurchaseTable, ReceiptTable
from portal.tables import UsageTable, table_paginate

# How many times the "we are checking your payment" message asks again (every 4 s) before it
# tells the student they may leave: the reconciliation job settles the payment anyway.
POLL_ATTEMPTS = 15
# Fragments of the dashboard holding pay buttons, which HTMX refreshes by their id.
BUTTON_FRAGMENTS = {"pay-again", "balance", "lots", "plans", "subscription-plans"}
# The dashboard's history tables, which HTMX swaps by their id on a sort, page or filter link.
TABLE_FRAGMENTS = {"usage-table", "purchase-table"}
TABLES_PER_PAGE = 10
# The most recent expired packages shown as cards; a long history's older ones are in Purchases.
EXPIRED_LOTS_SHOWN = 6
# Texts in English (tests name them), translated where they are shown: _(TEXT) % {...}.
PAY_BUTTON_INVALID = gettext_noop("This payment button is not valid. Please reload the page.")
BUTTON_REPLAYED = gettext_noop("You already used this button; nothing new was charged.")
PROVIDER_UNREACHABLE = gettext_noop("We could not reach the payment provider. Please try again.")

logger = logging.getLogger(__name__)


@require_GET
@student_view
def dashboard(request):
    if request.user.is_staff:
        return redirect("console:index")
    account = _account_read(request)
    query = _query(DashboardQuery, request)
    if query.get("again") or query.get("resume"):
        # Links from an alert, once: their answer depends on more than the account.
        return _dashboard(request, account, query)[0]
    return page_cached(
        request, versions=("account", account.pk, account.version), render=lambda: _dashboard(request, account, query)
    )


def _dashboard(request, account, query):
    """The dashboard, or the fragment HTMX asked for, and the moments its content changes by time."""
    target = request.htmx.target if request.htmx else None
    if target in TABLE_FRAGMENTS:
        # A table's sort, page or filter: both tables come back, the other one out-of-band, so that
        # its links keep the new query string.
        tables = _history_tables(request, account) | {"swapped": target}
        return render(request, "portal/_table_swap.html", tables), []
    summary = balance_summary(account=account)
    saved_cards = cards_for_account(account=account)
    plans = list(plans_for_sale())
    context = {
        "account": account,
        "purchases_paused": _(AccountBlocked.MESSAGE),
        "expired_lots_shown": EXPIRED_LOTS_SHOWN,
        "summary": summary,
        "cards": saved_cards,
        "default_card": next((card for card in saved_cards if card.is_default), None),
        "plans": plans,
        "top_up_plan": next((plan for plan in plans if plan.is_featured), plans[0] if plans else None),
        # From a "confirm your payment" alert: the page picks up the 3-D Secure check again.
        "resume_payment_id": query.get("resume"),
    } | live_context(etag=_live_etag(account), url=reverse("student:live"))
    if query.get("again"):
        context |= _pay_again(account, query["again"], saved_cards)
    if target in (None, "subscription-plans"):
        context |= _subscription_offer(account)
    # A lot stops counting when it expires, and one dated ahead starts counting then.
    moments = [moment for lot in summary.all_lots for moment in (lot.expires_at, lot.purchased_at)]
    if target in BUTTON_FRAGMENTS:
        # Refreshed after a payment or a new card: no history tables to count and page.
        return render(request, f"portal/dashboard.html#{target}", context), moments
    return render(request, "portal/dashboard.html", context | _history_tables(request, account)), moments


@require_GET
@student_view
def live(request):
    """The dashboard's live updates (portal/live.py): 304 while the account's version is unchanged."""
    if request.user.is_staff:
        raise Http404
    account = _account_read(request)
    etag = _live_etag(account)
    if live_unchanged(request, etag):
        return HttpResponseNotModified()
    return live_answer(request, etag=etag, url=reverse("student:live"), event="balanceChanged")


def _live_etag(account):
    return live_etag(account.pk, account.version, plans_version())


def _account_read(request):
    """The student's account as the session's backend read it with the user (no query of its own)."""
    try:
        return request.user.account
    except Account.DoesNotExist:
        return account_open(user=request.user)


def _history_tables(request, account):
    """The dashboard's sessions and purchase history, sorted, filtered and paged from the query string."""
    declined_shown = PurchaseHistoryQuery(request.GET).declined_shown
    purchases = purchase_history(account=account, declined=declined_shown)
    tables = {
        "usage_table": UsageTable(usage_history(account=account), prefix="usage-"),
        "purchase_table": PurchaseTable(purchases, prefix="purchases-", declined_shown=declined_shown),
    }
    for table in tables.values():
        _paginate(request, table)
    return tables


def _pay_again(account, payment_id, saved_cards):
    """From a "please pay again" alert: that payment's package on top of the page, one button per
    saved card (the renewal of the same lot for a renewal). A payment that is not the student's is
    ignored; one of theirs no longer to be paid (paid since, its package withdrawn) says so."""
    payment = payments.payment_again_offer(account=account, payment_id=payment_id)
    if payment is None:
        return {"pay_again_gone": payments_of(user=account.user).filter(pk=payment_id).exists()}
    return {"pay_again": payment, "pay_again_cards": saved_cards}


def _paginate(request, table):
    return table_paginate(request, table, per_page=TABLES_PER_PAGE)


@require_GET
@student_view
def lot_detail(request, lot_id):
    lot = get_object_or_404(lots_of(user=request.user), pk=lot_id)
    history = LotHistoryTable(lot_history(lot=lot))
    return render(request, "portal/lot_detail.html", {"lot": lot, "history": history})


@require_POST
@student_view
@rate_limited("pay")
def pay(request):
    account = account_open(user=request.user)
    form = PayForm(request.POST)
    if not form.is_valid():
        return _payment_outcome(request, account, refusal=_(PAY_BUTTON_INVALID))
    try:
        payment = payments.payment_start(
            account=account, token=form.cleaned_data["token"], payment_method_id=form.cleaned_data["payment_method"]
        )
    except BillingError as refused:
        return _payment_outcome(request, account, refusal=str(refused))
    return _payment_outcome(request, account, payment=payment)


@require_POST
@student_view
@rate_limited("payment_refresh")
def payment_refresh(request, payment_id):
    payment = get_object_or_404(payments_of(user=request.user), pk=payment_id)
    try:
        if payment.for_subscription:
            # Settles the invoice's payment and brings its subscription along (active once paid).
            payment = subscriptions.subscription_payment_refresh(payment=payment)
        else:
            payment = payments.payment_refresh(payment=payment)
    except ProviderAnswerUnreadable:
        logger.exception("Could not read Stripe's answer about payment %s; the page keeps checking.", payment.pk)
    attempt = min((_query(PaymentCheckQuery, request).get("attempt") or 0) + 1, POLL_ATTEMPTS)
    return _payment_outcome(request, payment.account, payment=payment, attempt=attempt)


def _query(form_class, request):
    """The valid parameters of the query string; one that is not valid is left out, as if not sent."""
    form = form_class(request.GET)
    form.is_valid()
    return form.cleaned_data


def _payment_outcome(request, account, *, payment=None, refusal="", attempt=0):
    """The result of a pay click: an HTMX fragment in place, or a message on the dashboard (on the
    subscription page for a subscription's payment)."""
    if not request.htmx:
        _payment_message(request, payment, refusal)
        return redirect("student:subscription" if payment and payment.for_subscription else "student:dashboard")
    context = {"account": account, "payment": payment, "refusal": refusal, "attempt": attempt}
    context["under_review"] = _(payments.PAYMENT_UNDER_REVIEW)
    context["resolved_by_staff"] = _(payments.PAYMENT_RESOLVED)
    context["keep_polling"] = attempt < POLL_ATTEMPTS
    if payment and payment.status == Payment.Status.REQUIRES_ACTION:
        try:
            context["client_secret"] = payments.payment_client_secret(payment=payment)
        except AccountBlocked as blocked:
            context["refusal"] = str(blocked)
        except BillingError:
            context["client_secret"] = ""  # the fragment offers to try the check again
    if payment and payment.status == Payment.Status.FAILED:
        # Every saved card, the one that failed last: a declined card may work after a call to the bank.
        saved = cards_for_account(account=account)
        context["retry_cards"] = sorted(saved, key=lambda card: card == payment.payment_method)
    if payment and payment.status == Payment.Status.SUCCEEDED:
        context["balance_minutes"] = balance_summary(account=account).available_minutes
    response = render(request, "portal/_payment_result.html", context)
    if payment:
        payment_notify(payment=payment)
    if not (payment and payment.status == Payment.Status.PROCESSING):
        # Something changed (or a button was refused): the page's buttons are re-rendered with
        # fresh one-time tokens. A "still checking" poll changes nothing, so refreshes nothing.
        trigger_client_event(response, "balanceChanged")
    return response


def _payment_message(request, payment, refusal):
    if refusal:
        messages.error(request, refusal)
    elif payment.replayed:
        messages.info(request, _(BUTTON_REPLAYED))
    elif payment.status == Payment.Status.SUCCEEDED:
        messages.success(request, _("%(plan)s added to your hours.") % {"plan": payment.plan.name})
    elif payment.status == Payment.Status.FAILED:
        messages.error(request, payment.failure_message)
    elif payment.handed_back:
        messages.warning(
            request,
            _(
                "You have a payment of %(amount)s for %(plan)s waiting for your bank's check, which needs "
                "JavaScript. Nothing new was charged."
            )
            % {"amount": money_text(payment.amount_cents, payment.currency), "plan": payment.plan.name},
        )
    elif payment.status == Payment.Status.REQUIRES_ACTION:
        messages.warning(request, _("Your bank asks you to confirm this payment, which needs JavaScript."))
    elif payment.status == Payment.Status.NEEDS_REVIEW:
        messages.warning(request, _(payments.PAYMENT_UNDER_REVIEW))
    elif payment.status == Payment.Status.RESOLVED:
        messages.info(request, _(payments.PAYMENT_RESOLVED))
    else:
        messages.info(request, _("We are checking your payment with the payment provider."))


@require_GET
@student_view
def card_list(request):
    account = account_open(user=request.user)
    context = {"cards": cards_for_account(account=account)}
    if request.htmx and request.htmx.target == "card-list":
        return render(request, "portal/cards.html#card-list", context)
    return render(request, "portal/cards.html", context)


@require_POST
@student_view
@rate_limited("card_setup", answer="json")
def card_setup(request):
    """Start adding a card: the SetupIntent that Stripe.js confirms in the browser."""
    try:
        setup_intent = cards.card_setup_start(account=account_open(user=request.user))
    except ProviderUnavailable:
        return JsonResponse({"error": _(PROVIDER_UNREACHABLE)}, status=503)
    except BillingError as failure:
        return JsonResponse({"error": str(failure)}, status=400)
    return JsonResponse({"client_secret": setup_intent.client_secret})


@require_POST
@student_view
@rate_limited("card_save", answer="json")
def card_save(request):
    """Save the card whose SetupIntent Stripe.js confirmed."""
    form = CardSaveForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": _("The card setup is missing. Please try again.")}, status=400)
    try:
        card = cards.card_save(
            account=account_open(user=request.user), setup_intent_id=form.cleaned_data["setup_intent"]
        )
    except ProviderUnavailable:
        return JsonResponse({"error": _(PROVIDER_UNREACHABLE)}, status=503)
    except BillingError as failure:
        return JsonResponse({"error": str(failure)}, status=400)
    return JsonResponse({"card": card.label, "default": card.is_default})


@require_POST
@student_view
@rate_limited("card_change")
def card_make_default(request, card_id):
    card = _own_card(request, card_id)
    try:
        cards.card_make_default(card=card)
    except BillingError as failure:
        return _card_outcome(request, error=str(failure))
    return _card_outcome(request, notice=_("%(card)s is now your default card.") % {"card": card.label})


@require_POST
@student_view
@rate_limited("card_change")
def card_remove(request, card_id):
    card = _own_card(request, card_id)
    was_default = card.is_default
    try:
        successor = cards.card_remove(card=card)
    except BillingError as failure:
        return _card_outcome(request, error=str(failure))
    if not was_default:
        notice = _("%(card)s was removed.") % {"card": card.label}
    elif successor:
        notice = _("%(card)s was removed. %(successor)s is now your default card.") % {
            "card": card.label,
            "successor": successor.label,
        }
    else:
        notice = _("%(card)s was removed. You have no saved card now.") % {"card": card.label}
    return _card_outcome(request, notice=notice)


def _own_card(request, card_id):
    return get_object_or_404(cards_of(user=request.user), pk=card_id)


def _flash_and_redirect(request, to, *, notice, error):
    """Without HTMX, an action's outcome is a message on the page it redirects to (POST-redirect-GET)."""
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect(to)


def _card_outcome(request, *, notice="", error=""):
    if not request.htmx:
        return _flash_and_redirect(request, "student:cards", notice=notice, error=error)
    account = account_open(user=request.user)
    context = {"cards": cards_for_account(account=account), "notice": notice, "error": error}
    return render(request, "portal/cards.html#card-list", context)


@require_GET
@student_view
def receipt_list(request):
    table = ReceiptTable(receipts_for_account(account=account_open(user=request.user)), prefix="receipts-")
    _paginate(request, table)
    return render(request, "portal/receipts.html", {"table": table})


@require_GET
@student_view
def receipt_download(request, receipt_id):
    """The stored PDF, to its student; anyone else is told it does not exist."""
    return receipt_file(get_object_or_404(receipts_of(user=request.user), pk=receipt_id))


@require_GET
@student_view
def alert_bell(request):
    """The header's bell: the unread count, one indexed query, polled by HTMX."""
    return render(request, "portal/_alert_bell.html", _alert_bell_context(request))


def _alert_bell_context(request):
    return {"unread": unread_count(user=request.user), "poll_seconds": settings.ALERTS_BELL_POLL_SECONDS}


@require_GET
@student_view
def alert_banner(request):
    """The dashboard's banner; with `?bell=1` (as the dashboard first loads it) the header's bell
    comes with it, out of band: one request instead of two for what the page shows at once."""
    response = _alert_banner(request)
    if request.GET.get("bell") == "1":
        response.content += render(
            request, "portal/_alert_bell.html", _alert_bell_context(request) | {"oob": True}
        ).content
    return response


def _alert_banner(request):
    """The dashboard's banner: the most urgent open alert that needs the student. Balance alerts
    are left to the balance card (it says them, live) and good news to the bell and inbox."""
    Kind = Notification.Kind
    alert = most_urgent_unread(
        user=request.user,
        besides=[Kind.LOW_BALANCE, Kind.BALANCE_DEPLETED, Kind.PAYMENT_SUCCEEDED, Kind.DISPUTE_RELEASED],
    )
    return render(request, "portal/_alert_banner.html", {"alert": alert})


@require_GET
@student_view
def alert_inbox(request):
    return render(request, "portal/alerts.html", {"table": _inbox_table(request)})


def _inbox_table(request):
    table = NotificationTable(inbox(user=request.user), prefix="alerts-")
    _paginate(request, table)
    return table


@require_POST
@student_view
def alert_mark_read(request, notification_id=None):
    changed = notification_mark_read(user=request.user, notification_id=notification_id)
    if notification_id is not None and not changed and not inbox(user=request.user).filter(pk=notification_id).exists():
        raise Http404("No such alert.")
    if not request.htmx:
        return redirect("student:alerts")
    if request.htmx.target == "alert-banner":
        response = _alert_banner(request)  # the next most urgent alert takes its place
    else:
        response = render(request, "portal/alerts.html#inbox", {"table": _inbox_table(request)})
    return trigger_client_event(response, "alertsChanged")


# Subscriptions: subscribe in one click (on the dashboard or the subscription page), and the
# subscription page's self-service actions. Each action answers its fragment in place under HTMX,
# and a redirect to the subscription page with a message without JavaScript.

SUBSCRIBE_BUTTON_INVALID = gettext_noop("This subscribe button is not valid. Please reload the page.")
NOT_YOUR_CARD = gettext_noop("That card is not one of your saved cards.")
SUBSCRIBED = gettext_noop("You are subscribed to %(plan)s: %(hours)s added to your hours. It renews on %(renewal)s.")
SUBSCRIBE_REPLAYED = BUTTON_REPLAYED
SUBSCRIBE_NEEDS_CHECK = gettext_noop(
    "Your bank asks you to confirm the first payment of your subscription, which needs JavaScript."
)
SUBSCRIBE_CHECKING = gettext_noop(
    "We are waiting for the payment provider to confirm your subscription. You will not be charged twice; "
    "this page shows it as soon as it is confirmed."
)
NOT_STARTED = gettext_noop("%(reason)s No subscription was started.")
CANCELLED_AT_PERIOD_END = gettext_noop(
    "Your subscription ends on %(end)s. You are not charged again. The hours you already have stay until they "
    "expire; no more hours are added after %(end)s."
)
# Without a known end date (Stripe did not say): the same sentence, without a date.
CANCELLED_AT_PERIOD_END_UNDATED = gettext_noop(
    "Your subscription ends on the end of this period. You are not charged again. The hours you already have "
    "stay until they expire; no more hours are added after the end of this period."
)
RESUMED = gettext_noop("Your subscription continues: it renews on %(renewal)s for %(amount)s.")
CARD_CHANGED = gettext_noop("%(card)s now pays for your subscription. It is also your default card for packages.")
# By the plan's interval: "a month" and "a week" read differently in Portuguese.
DOWNGRADED = {
    "month": gettext_noop(
        "Your plan changes to %(plan)s from your next period, on %(renewal)s: %(amount)s a month for %(hours)s. "
        "Nothing is charged now, and this period's hours stay as they are."
    ),
    "week": gettext_noop(
        "Your plan changes to %(plan)s from your next period, on %(renewal)s: %(amount)s a week for %(hours)s. "
        "Nothing is charged now, and this period's hours stay as they are."
    ),
}
UPGRADED = gettext_noop("You are now on %(plan)s.")


@dataclass(frozen=True)
class PlanOption:
    """A plan the subscription can move to. An upgrade (a higher price) applies now with a prorated
    charge; a downgrade from the next period (as billing.subscriptions.subscription_plan_change does)."""

    plan: object
    upgrade: bool


def _subscription_offer(account):
    """The dashboard's "Monthly plans": the student's live subscription, or the plans to subscribe to."""
    current = subscriptions.live_subscription(account=account)
    return {
        "current_subscription": current,
        "subscription_plans": [] if current else list(subscriptions.subscription_plans_for_sale()),
    }


def _notices_on_top(view):
    """A rate limit's 429 is a notice, not the fragment the action would swap: it goes to the page's
    message area, so that the subscription stays on screen."""

    @wraps(view)
    def answered(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if request.htmx and response.status_code == 429:
            retarget(response, "#payment-result")
            reswap(response, "innerHTML show:#payment-result:top")
        return response

    return answered


@require_POST
@student_view
@rate_limited("pay")
def subscribe(request):
    account = account_open(user=request.user)
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        return _subscribe_outcome(request, account, refusal=SUBSCRIBE_BUTTON_INVALID)
    try:
        _card_choose(request, form.cleaned_data["payment_method"])
        subscription = subscriptions.subscription_start(account=account, token=form.cleaned_data["token"])
    except BillingError as refused:
        return _subscribe_outcome(request, account, refusal=str(refused))
    return _subscribe_outcome(request, account, subscription=subscription)


def _card_choose(request, card_id):
    """The card a subscribe button offers: a subscription charges the default card, so a button for
    another saved card (after a decline) makes that one the default first, as its text says."""
    if card_id is None:
        return
    card = cards_of(user=request.user).filter(pk=card_id).first()
    if card is None:
        raise BillingError(_(NOT_YOUR_CARD))
    if not card.is_default:
        cards.card_make_default(card=card)


def _subscribe_outcome(request, account, *, subscription=None, refusal=""):
    """A subscribe click's result looks like a package payment's: its first invoice's payment goes
    through the same fragment (paid, 3-D Secure, declined with other cards to try)."""
    payment = None
    if subscription is not None:
        payment = subscriptions.subscription_open_payment(subscription=subscription) or (
            subscription.payments.order_by("-created_at", "-pk").first()
        )
        if payment is None and subscription.ended:
            refusal = _(NOT_STARTED) % {"reason": subscription.failure_message}
    if not request.htmx:
        _subscribe_message(request, subscription, payment, refusal)
        return redirect("student:subscription")
    if payment is not None:
        payment.replayed = subscription.replayed
        return _payment_outcome(request, account, payment=payment)
    if refusal:
        return _payment_outcome(request, account, refusal=refusal)
    response = render(request, "portal/_subscription_checking.html", {"message": _(SUBSCRIBE_CHECKING)})
    return trigger_client_event(response, "balanceChanged")


def _subscribe_message(request, subscription, payment, refusal):
    if refusal:
        messages.error(request, refusal)
    elif subscription.replayed:
        messages.info(request, _(SUBSCRIBE_REPLAYED))
    elif subscription.status in Subscription.RUNNING:
        messages.success(
            request,
            _(SUBSCRIBED)
            % {
                "plan": subscription.plan.name,
                "hours": hours_text(subscription.plan.minutes),
                "renewal": date_text(subscription.current_period_end),
            },
        )
    elif subscription.ended:
        messages.error(request, _(NOT_STARTED) % {"reason": subscription.failure_message})
    elif payment is not None and payment.status == Payment.Status.REQUIRES_ACTION:
        messages.warning(request, _(SUBSCRIBE_NEEDS_CHECK))
    else:
        messages.info(request, _(SUBSCRIBE_CHECKING))


@require_GET
@student_view
def subscription_page(request):
    return _subscription_page(request)


def _subscription_page(request, *, notice="", error="", confirm_cancel=False):
    """The subscription page, or (for HTMX) its #subscription fragment with the action's notice."""
    account = account_open(user=request.user)
    context = _subscription_context(account) | {
        "notice": notice,
        "error": error,
        "confirm_cancel": confirm_cancel,
        # From a "confirm your payment" alert: the page picks up the 3-D Secure check again.
        "resume_payment_id": _query(DashboardQuery, request).get("resume"),
    }
    if request.htmx and (request.method == "POST" or request.htmx.target == "subscription"):
        return render(request, "portal/subscription.html#subscription", context)
    return render(request, "portal/subscription.html", context)


def _subscription_context(account):
    saved = cards_for_account(account=account)
    default_card = next((card for card in saved if card.is_default), None)
    subscription = subscriptions.live_subscription(account=account)
    context = {
        "account": account,
        "cards": saved,
        "default_card": default_card,
        "subscription": subscription,
        "purchases_paused": _(AccountBlocked.MESSAGE),
        "add_card_href": "#add-card",
    }
    if subscription is None:
        return context | {
            "subscription_plans": list(subscriptions.subscription_plans_for_sale()),
            "ended_subscription": account.subscriptions.filter(status=Subscription.Status.CANCELED)
            .select_related("plan")
            .first(),
        }
    invoices = list(subscription_invoices(subscription=subscription))
    # Stripe charges the customer's default card, which the portal keeps equal to the student's.
    charged_card = default_card or subscription.payment_method
    options = []
    if subscription.status in Subscription.RUNNING:
        options = [
            PlanOption(plan=plan, upgrade=_is_upgrade(plan, subscription.plan))
            for plan in subscriptions.plan_change_options(subscription=subscription)
        ]
    return context | {
        "invoices": invoices,
        "subscription_lots": [invoice.lot for invoice in invoices if invoice.lot_id],
        "open_payment": subscriptions.subscription_open_payment(subscription=subscription),
        "charged_card": charged_card,
        "other_cards": [card for card in saved if charged_card is None or card.pk != charged_card.pk],
        "plan_options": options,
        "overdue": subscription.status in Subscription.OVERDUE,
        # Cancel, resume, change plan or card: a subscription Stripe has, running or owed a payment.
        "manageable": bool(subscription.stripe_subscription_id)
        and subscription.status in Subscription.RUNNING | Subscription.OVERDUE,
    }


def _own_subscription(request, subscription_id):
    return get_object_or_404(subscriptions_of(user=request.user), pk=subscription_id)


def _subscription_outcome(request, *, notice="", error=""):
    if not request.htmx:
        return _flash_and_redirect(request, "student:subscription", notice=notice, error=error)
    return _subscription_page(request, notice=notice, error=error)


@require_http_methods(["GET", "POST"])
@student_view
def subscription_cancel(request, subscription_id):
    """GET: the confirmation, which says what happens to the hours; POST: cancel at period end."""
    subscription = _own_subscription(request, subscription_id)
    if request.method == "GET":
        return _subscription_page(request, confirm_cancel=True)
    return _subscription_cancel(request, subscription)


@_notices_on_top
@rate_limited("subscription_change")
def _subscription_cancel(request, subscription):
    try:
        subscription = subscriptions.subscription_cancel_at_period_end(subscription=subscription)
    except BillingError as refused:
        return _subscription_outcome(request, error=str(refused))
    if subscription.current_period_end:
        notice = _(CANCELLED_AT_PERIOD_END) % {"end": date_text(subscription.current_period_end)}
    else:
        notice = _(CANCELLED_AT_PERIOD_END_UNDATED)
    return _subscription_outcome(request, notice=notice)


@require_POST
@student_view
@_notices_on_top
@rate_limited("subscription_change")
def subscription_resume(request, subscription_id):
    subscription = _own_subscription(request, subscription_id)
    try:
        subscription = subscriptions.subscription_resume(subscription=subscription)
    except BillingError as refused:
        return _subscription_outcome(request, error=str(refused))
    notice = _(RESUMED) % {
        "renewal": date_text(subscription.current_period_end),
        "amount": money_text(subscription.plan.price_cents, subscription.plan.currency),
    }
    return _subscription_outcome(request, notice=notice)


@require_POST
@student_view
@_notices_on_top
@rate_limited("subscription_change")
def subscription_card_change(request, subscription_id):
    subscription = _own_subscription(request, subscription_id)
    form = SubscriptionCardForm(request.POST)
    card = None
    if form.is_valid():
        card = cards_of(user=request.user).filter(pk=form.cleaned_data["payment_method"]).first()
    if card is None:
        return _subscription_outcome(request, error=_(NOT_YOUR_CARD))
    try:
        subscriptions.subscription_card_change(subscription=subscription, card=card)
    except BillingError as refused:
        return _subscription_outcome(request, error=str(refused))
    return _subscription_outcome(request, notice=_(CARD_CHANGED) % {"card": card.label})


@require_POST
@student_view
@_notices_on_top
@rate_limited("pay")
def subscription_plan_change(request, subscription_id):
    """A downgrade is a notice in place; an upgrade's prorated charge is a payment, shown like any
    other (paid, 3-D Secure, declined) at the top of the page, and the subscription refreshes."""
    subscription = _own_subscription(request, subscription_id)
    form = PlanChangeForm(request.POST)
    if not form.is_valid():
        return _subscription_outcome(request, error=_(subscriptions.NOT_FOR_SALE))
    previous = subscription.plan
    try:
        subscription, payment = subscriptions.subscription_plan_change(
            subscription=subscription, plan_id=form.cleaned_data["plan"]
        )
    except BillingError as refused:
        return _subscription_outcome(request, error=str(refused))
    plan = subscription.plan
    if payment is not None:
        if not request.htmx:
            _payment_message(request, payment, "")
            return redirect("student:subscription")
        response = _payment_outcome(request, payment.account, payment=payment)
        retarget(response, "#payment-result")
        return reswap(response, "innerHTML show:#payment-result:top")
    if _is_upgrade(plan, previous):
        return _subscription_outcome(request, notice=_(UPGRADED) % {"plan": plan.name})
    notice = _(DOWNGRADED.get(plan.interval, DOWNGRADED["month"])) % {
        "plan": plan.name,
        "renewal": date_text(subscription.current_period_end),
        "amount": money_text(plan.price_cents, plan.currency),
        "hours": hours_text(plan.minutes),
    }
    return _subscription_outcome(request, notice=notice)


def _is_upgrade(plan, current):
    # billing.subscriptions.subscription_plan_change's rule: a higher price applies now, prorated.
    return plan.price_cents > current.price_cents


@require_POST
@student_view
@_notices_on_top
@rate_limited("pay")
def subscription_pay_now(request, subscription_id):
    """After a failed renewal: pay the open invoice with the subscription's card. The result is a
    payment like a package's (paid, 3-D Secure, declined), at the top of the page."""
    subscription = _own_subscription(request, subscription_id)
    account = subscription.account
    try:
        payment = subscriptions.subscription_pay_now(subscription=subscription)
    except BillingError as refused:
        if not request.htmx:
            messages.error(request, str(refused))
            return redirect("student:subscription")
        return _payment_outcome(request, account, refusal=str(refused))
    return _payment_outcome(request, account, payment=payment)
