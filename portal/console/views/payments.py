"""Payments: the table, its CSV export, a payment's timeline, refunds and receipt resends."""

import csv
import secrets
from functools import partial

from django.contrib import messages
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts.notifications import pay_again_send, payment_notify, refund_notify
from billing import payments, receipts, refunds
from billing.errors import BillingError, ProviderUnavailable
from billing.formatting import hours_text, iso_date, local, money_input, money_text
from billing.models import Payment, Receipt, Refund
from billing.payment_reviews import payment_review_resolve
from billing.reports import payment_timeline
from portal.console.access import console_view, fresh_code_redirect, is_finance
from portal.console.filters import PaymentFilter, RefundFilter
from portal.console.forms import ReceiptResendForm, RefundForm
from portal.console.tables import PaymentTable, RefundTable
from portal.console.views.common import action_done, action_form, list_page, reason_action, table_page
from portal.downloads import receipt_file
from portal.ratelimits import client_ip

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ["id", "created_at", "email", "plan", "amount", "currency", "status", "failure_code", "payment_intent"]


def payments_filtered(request):
    payments = Payment.objects.select_related("account__user", "plan", "payment_method")
    return PaymentFilter(request.GET, queryset=payments)


@console_view
@require_GET
def payment_list(request):
    found = payments_filtered(request)
    table = table_page(request, PaymentTable(found.qs), lazy=True)
    return list_page(
        request, title="Payments", table=table, filterset=found, export_url=reverse("console:payments_export")
    )


@console_view
@require_GET
def payment_export(request):
    """The filtered payments as CSV, streamed row by row so a million rows never sit in memory. A
    filter that is not valid exports nothing (never every row, as if unfiltered): the list says why."""
    found = payments_filtered(request)
    if not found.is_valid():
        messages.error(request, "Nothing was exported: correct the filters below, then export again.")
        return redirect(f"{reverse('console:payments')}?{request.GET.urlencode()}")
    rows = found.qs.order_by("-created_at", "-id").values_list(
        "id",
        "created_at",
        "account__user__email",
        "plan__name",
        "amount_cents",
        "currency",
        "status",
        "failure_code",
        "stripe_payment_intent_id",
    )
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(CSV_COLUMNS)
        for pk, created_at, email, plan, cents, currency, status, code, intent in rows.iterator(chunk_size=2000):
            row = [
                pk,
                local(created_at).isoformat(),
                email,
                plan,
                money_input(cents),
                currency,
                status,
                code,
                intent or "",
            ]
            yield writer.writerow([_inert(value) for value in row])

    filename = f"payments-{iso_date(timezone.now())}.csv"
    return StreamingHttpResponse(
        lines(),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _inert(value):
    """A text cell a spreadsheet would run as a formula (an email "=1+2@x.io") is quoted as text."""
    return f"'{value}" if isinstance(value, str) and value[:1] in FORMULA_STARTS else value


class _Echo:
    """csv.writer writes into this and gets the line back, to be streamed."""

    def write(self, value):
        return value


@console_view
@require_GET
def payment_detail(request, payment_id):
    payment = get_object_or_404(
        Payment.objects.select_related("account__user", "plan", "payment_method", "lot"), pk=payment_id
    )
    context = {
        "payment": payment,
        "timeline": payment_timeline(payment=payment),
        "defaults": refunds.refund_defaults(payment=payment),
        "refunds": payment.refunds.all(),
        "receipt": Receipt.objects.filter(payment=payment).first(),
        "retry": Payment.objects.filter(retry_of=payment).first(),
    }
    if is_finance(request.user) and payment.status == Payment.Status.FAILED:
        # Each action's button shows only where it can act; its refusal names the reason otherwise.
        context["may_ask_again"] = not payments.payment_again_refusal(payment=payment)
        context["may_retry"] = not payments.payment_retry_refusal(payment=payment)
    return render(request, "console/payment_detail.html", context)


@console_view
@require_GET
def refund_list(request):
    found = RefundFilter(request.GET, queryset=Refund.objects.select_related("payment__account__user"))
    table = table_page(request, RefundTable(found.qs))
    return list_page(request, title="Refunds", table=table, filterset=found)


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def refund_create(request, payment_id):
    """Refund form → a confirmation naming the amount and hours → the refund. Nothing reaches
    Stripe before the confirmation."""
    payment = get_object_or_404(Payment.objects.select_related("account__user", "lot"), pk=payment_id)
    defaults = refunds.refund_defaults(payment=payment)
    initial = {"amount": money_input(defaults.refundable_cents), "hours": defaults.default_minutes}
    form = RefundForm(request.POST or None, initial=initial)
    context = {"form": form}
    if request.method == "POST" and form.is_valid() and _within_limits(form, defaults, payment):
        amount, minutes = form.cleaned_data["amount"], form.cleaned_data["hours"]
        if "confirm" not in request.POST or not form.cleaned_data["key"]:
            # The confirmation carries a fresh key: posting it twice makes one refund.
            data = request.POST.copy()
            data["key"] = secrets.token_urlsafe(18)
            confirming = RefundForm(data)
            confirming.is_valid()
            context = {"form": confirming} | _refund_texts(payment) | _confirmation(amount, minutes, payment)
            return action_form(request, context)
        try:
            refund = refunds.refund_issue(
                payment=payment,
                amount_cents=amount,
                minutes=minutes,
                reason=form.cleaned_data["reason"],
                actor=request.user,
                ip_address=client_ip(request),
                request_key=form.cleaned_data["key"],
            )
        except ProviderUnavailable:
            return action_done(
                request,
                "Refund requested, but Stripe did not answer: it is waiting. Send it again from the payment.",
                redirect_to=_payment_url(payment),
                level=messages.WARNING,
            )
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            refund_notify(refund=refund)  # the student hears of hours taken back now, not at the next scan
            return action_done(
                request,
                f"Refunded {money_text(refund.amount_cents, refund.currency)}; "
                f"{hours_text(refund.minutes_reversed)} taken back.",
                redirect_to=_payment_url(payment),
            )
    return action_form(request, context | _refund_texts(payment))


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def payment_resolve(request, payment_id):
    """Finance closes a payment left for review, saying what was done (refund, hours added, ...)."""
    payment = get_object_or_404(Payment.objects.select_related("account__user"), pk=payment_id)
    intro = (
        f"{payment.failure_message} Say what was done about it (a refund, hours added by hand, nothing needed) "
        "and why: it is kept in the audit log."
    )
    return reason_action(
        request,
        partial(payment_review_resolve, payment=payment),
        done="Payment marked as resolved.",
        redirect_to=_payment_url(payment),
        texts={"title": f"Resolve payment {payment.pk}", "intro": intro, "submit": "Mark as resolved"},
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def payment_pay_again(request, payment_id):
    """Finance asks the student (alert and email) to pay again for a failed package payment."""
    payment = get_object_or_404(Payment.objects.select_related("account__user", "plan"), pk=payment_id)
    intro = (
        f"{payment.account.user.email} gets an alert and an email whose button pays "
        f"{money_text(payment.amount_cents, payment.currency)} for {payment.plan.name} again, with one of their "
        "saved cards. Say why: it is kept in the audit log."
    )
    return reason_action(
        request,
        partial(pay_again_send, payment=payment),
        done="The student has been asked to pay again.",
        redirect_to=_payment_url(payment),
        texts={"title": f"Ask to pay again for payment {payment.pk}", "intro": intro, "submit": "Send the alert"},
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def payment_retry(request, payment_id):
    """Finance's one retry of a payment that failed without reaching the bank."""
    payment = get_object_or_404(
        Payment.objects.select_related("account__user", "plan", "payment_method"), pk=payment_id
    )
    card = payment.payment_method.label if payment.payment_method else "the card"
    intro = (
        f"Charge {money_text(payment.amount_cents, payment.currency)} for {payment.plan.name} to {card} again, once: "
        f"this payment failed without reaching the bank ({payment.failure_message}) The student is told the "
        "outcome. Say why: it is kept in the audit log."
    )
    return reason_action(
        request,
        partial(_retry, payment=payment),
        done=_retry_message,
        redirect_to=_payment_url(payment),
        texts={"title": f"Retry payment {payment.pk}", "intro": intro, "submit": "Retry the charge", "danger": True},
    )


def _retry(*, payment, **staff):
    retry = payments.payment_retry(payment=payment, **staff)
    payment_notify(payment=retry)  # the student hears of the outcome (or the 3-D Secure check) at once
    return retry


def _retry_message(retry):
    amount = money_text(retry.amount_cents, retry.currency)
    if retry.status == Payment.Status.SUCCEEDED:
        return (
            messages.SUCCESS,
            f"The retry (payment {retry.pk}) went through: {amount} charged, {hours_text(retry.minutes)} added.",
        )
    if retry.status == Payment.Status.REQUIRES_ACTION:
        return (
            messages.WARNING,
            f"The student's bank asks them to confirm the retry (payment {retry.pk}) with 3-D Secure; they have an "
            "alert to complete it.",
        )
    if retry.status == Payment.Status.FAILED:
        return messages.ERROR, f"The retry (payment {retry.pk}) failed too: {retry.failure_message}"
    if retry.status == Payment.Status.NEEDS_REVIEW:
        return messages.WARNING, f"The retry (payment {retry.pk}) is left for review: {retry.failure_message}"
    return (
        messages.INFO,
        f"Stripe has not answered the retry (payment {retry.pk}) yet; it is settled as soon as it does.",
    )


def _refund_texts(payment):
    return {
        "title": f"Refund payment {payment.pk}",
        "intro": f"{payment.account.user.email} was charged "
        f"{money_text(payment.charged_cents, payment.charged_currency)} for {payment.plan.name}.",
        "submit": "Review the refund",
    }


def _confirmation(amount, minutes, payment):
    return {
        "confirming": True,
        "intro": f"Refund {money_text(amount, payment.charged_currency)} to {payment.account.user.email}'s card and "
        f"take back {hours_text(minutes)} from their package. Stripe sends the money at once; this cannot be undone.",
        "submit": "Confirm the refund",
        "danger": True,
    }


def _within_limits(form, defaults, payment):
    if form.cleaned_data["amount"] > defaults.refundable_cents:
        form.add_error(
            "amount",
            f"At most {money_text(defaults.refundable_cents, payment.charged_currency)} can still be refunded.",
        )
    if form.cleaned_data["hours"] > defaults.unused_minutes:
        form.add_error("hours", f"Only {hours_text(defaults.unused_minutes)} of this package are left to take back.")
    return form.is_valid()


@console_view(finance=True)
@require_POST
def refund_send(request, refund_id):
    refund = get_object_or_404(Refund, pk=refund_id)
    try:
        sent = refunds.refund_send(refund=refund, actor=request.user, ip_address=client_ip(request))
    except ProviderUnavailable:
        messages.error(request, "Stripe did not answer again. Try once more in a minute.")
    except BillingError as refused:
        messages.error(request, str(refused))
    else:
        refund_notify(refund=sent)
        level, text = _send_again_message(sent)
        messages.add_message(request, level, text)
    return redirect(_payment_url(refund.payment))


def _send_again_message(refund):
    amount = money_text(refund.amount_cents, refund.currency)
    status = refund.get_status_display().lower()
    if refund.send_outcome == refunds.SendOutcome.SENT:
        return messages.SUCCESS, f"The refund of {amount} was sent to Stripe, which answered: {status}."
    if refund.send_outcome == refunds.SendOutcome.FOUND:
        return (
            messages.SUCCESS,
            f"Stripe had already made the refund of {amount} (its answer had not reached us); it is recorded now "
            f"({status}). Nothing was sent again.",
        )
    return messages.INFO, f"The refund of {amount} already had its answer from Stripe ({status}); nothing was sent."


@console_view
@require_GET
def receipt_download(request, receipt_id):
    return receipt_file(get_object_or_404(Receipt, pk=receipt_id))


@console_view
@require_http_methods(["GET", "POST"])
def receipt_resend(request, receipt_id):
    receipt = get_object_or_404(Receipt.objects.select_related("account__user"), pk=receipt_id)
    form = ReceiptResendForm(
        request.POST or None, student=receipt.account.user, may_send_elsewhere=is_finance(request.user)
    )
    if request.method == "POST" and form.is_valid():
        if form.sends_elsewhere() and (stale := fresh_code_redirect(request)):
            return stale
        receipts.receipt_resend(
            receipt=receipt, to=form.cleaned_data["to"] or None, actor=request.user, ip_address=client_ip(request)
        )
        to = form.cleaned_data["to"] or receipt.account.user.email
        back = _payment_url(receipt.payment or receipt.refund.payment)
        return action_done(
            request, f"{receipt.get_kind_display()} {receipt.number} is on its way to {to}.", redirect_to=back
        )
    return action_form(
        request,
        {"form": form, "title": f"Resend {receipt.get_kind_display().lower()} {receipt.number}", "submit": "Send"},
    )


def _payment_url(payment):
    return reverse("console:payment", args=[payment.pk])
