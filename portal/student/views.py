"""The student's pages: a thin layer over billing's services and selectors."""

import logging

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from alerts.models import Notification
from alerts.notifications import email_preferences_save, notification_mark_read, payment_notify
from alerts.selectors import emailed_kinds, inbox, most_urgent_unread, unread_count
from billing import cards, payments
from billing.errors import AccountBlocked, BillingError, ProviderAnswerUnreadable, ProviderUnavailable
from billing.formatting import money_text
from billing.ledger import account_open
from billing.models import Payment
from billing.selectors import (
    balance_summary,
    cards_for_account,
    cards_of,
    lot_history,
    lots_of,
    payments_of,
    plans_for_sale,
    receipts_for_account,
    receipts_of,
    usage_history,
)
from portal.downloads import receipt_file
from portal.ratelimits import rate_limited
from portal.student.access import student_view
from portal.student.forms import CardSaveForm, DashboardQuery, EmailPreferencesForm, PayForm, PaymentCheckQuery
from portal.student.tables import LotHistoryTable, NotificationTable, PurchaseTable, ReceiptTable
from portal.tables import UsageTable, table_paginate

# How many times the "we are checking your payment" message asks again (every 4 s) before it
# tells the student they may leave: the reconciliation job settles the payment anyway.
POLL_ATTEMPTS = 15
# Fragments of the dashboard holding pay buttons, which HTMX refreshes by their id.
BUTTON_FRAGMENTS = {"balance", "lots", "plans"}
TABLES_PER_PAGE = 10
# The most recent expired packages shown as cards; a long history's older ones are in Purchases.
EXPIRED_LOTS_SHOWN = 6

logger = logging.getLogger(__name__)


@require_GET
@student_view
def dashboard(request):
    if request.user.is_staff:
        return redirect("console:index")
    account = account_open(user=request.user)
    target = request.htmx.target if request.htmx else None
    summary = balance_summary(account=account)
    saved_cards = cards_for_account(account=account)
    plans = list(plans_for_sale())
    context = {
        "account": account,
        "purchases_paused": AccountBlocked.MESSAGE,
        "expired_lots_shown": EXPIRED_LOTS_SHOWN,
        "summary": summary,
        "cards": saved_cards,
        "default_card": next((card for card in saved_cards if card.is_default), None),
        "plans": plans,
        "top_up_plan": next((plan for plan in plans if plan.is_featured), plans[0] if plans else None),
        # From a "confirm your payment" alert: the page picks up the 3-D Secure check again.
        "resume_payment_id": _query(DashboardQuery, request).get("resume"),
    }
    if target in BUTTON_FRAGMENTS:
        # Refreshed after a payment or a new card: no history tables to count and page.
        return render(request, f"portal/dashboard.html#{target}", context)
    context["usage_table"] = UsageTable(usage_history(account=account), prefix="usage-")
    context["purchase_table"] = PurchaseTable(summary.all_lots, prefix="purchases-")
    for table in (context["usage_table"], context["purchase_table"]):
        _paginate(request, table)
    if target in {"usage-table", "purchase-table"}:
        # Both tables come back: the other one out-of-band, so its links keep the new query string.
        return render(request, "portal/_table_swap.html", context | {"swapped": target})
    return render(request, "portal/dashboard.html", context)


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
        return _payment_outcome(request, account, refusal="This payment button is not valid. Please reload the page.")
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
    """The result of a pay click: an HTMX fragment in place, or a message on the dashboard."""
    if not request.htmx:
        _payment_message(request, payment, refusal)
        return redirect("student:dashboard")
    context = {"account": account, "payment": payment, "refusal": refusal, "attempt": attempt}
    context["under_review"] = payments.PAYMENT_UNDER_REVIEW
    context["resolved_by_staff"] = payments.PAYMENT_RESOLVED
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
        messages.info(request, "You already used this button; nothing new was charged.")
    elif payment.status == Payment.Status.SUCCEEDED:
        messages.success(request, f"{payment.plan.name} added to your hours.")
    elif payment.status == Payment.Status.FAILED:
        messages.error(request, payment.failure_message)
    elif payment.handed_back:
        messages.warning(
            request,
            f"You have a payment of {money_text(payment.amount_cents, payment.currency)} for {payment.plan.name} "
            "waiting for your bank's check, which needs JavaScript. Nothing new was charged.",
        )
    elif payment.status == Payment.Status.REQUIRES_ACTION:
        messages.warning(request, "Your bank asks you to confirm this payment, which needs JavaScript.")
    elif payment.status == Payment.Status.NEEDS_REVIEW:
        messages.warning(request, payments.PAYMENT_UNDER_REVIEW)
    elif payment.status == Payment.Status.RESOLVED:
        messages.info(request, payments.PAYMENT_RESOLVED)
    else:
        messages.info(request, "We are checking your payment with the payment provider.")


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
        return JsonResponse({"error": "We could not reach the payment provider. Please try again."}, status=503)
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
        return JsonResponse({"error": "The card setup is missing. Please try again."}, status=400)
    try:
        card = cards.card_save(
            account=account_open(user=request.user), setup_intent_id=form.cleaned_data["setup_intent"]
        )
    except ProviderUnavailable:
        return JsonResponse({"error": "We could not reach the payment provider. Please try again."}, status=503)
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
    return _card_outcome(request, notice=f"{card.label} is now your default card.")


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
    notice = f"{card.label} was removed."
    if was_default:
        notice += f" {successor.label} is now your default card." if successor else " You have no saved card now."
    return _card_outcome(request, notice=notice)


def _own_card(request, card_id):
    return get_object_or_404(cards_of(user=request.user), pk=card_id)


def _card_outcome(request, *, notice="", error=""):
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, notice)
        return redirect("student:cards")
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
    context = {"unread": unread_count(user=request.user), "poll_seconds": settings.ALERTS_BELL_POLL_SECONDS}
    return render(request, "portal/_alert_bell.html", context)


@require_GET
@student_view
def alert_banner(request):
    return _alert_banner(request)


def _alert_banner(request):
    """The dashboard's banner: the most urgent open alert that needs the student. Balance alerts
    are left to the balance card (it says them, live) and good news to the bell and inbox."""
    Kind = Notification.Kind
    alert = most_urgent_unread(
        user=request.user, besides=[Kind.LOW_BALANCE, Kind.BALANCE_DEPLETED, Kind.PAYMENT_SUCCEEDED]
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


@student_view
def alert_preferences(request):
    if request.method == "POST":
        form = EmailPreferencesForm(request.POST)
        if form.is_valid():
            email_preferences_save(user=request.user, emailed_kinds=form.cleaned_data["emailed"])
            messages.success(request, "Your email choices are saved. In the app you always see every alert.")
            return redirect("student:alert_preferences")
    else:
        form = EmailPreferencesForm(initial={"emailed": emailed_kinds(user=request.user)})
    return render(request, "portal/alert_preferences.html", {"form": form})
