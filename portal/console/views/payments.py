"""Payments: the table, its CSV export, a payment's timeline, refunds and receipt resends."""

import csv
import secrets
from functools import partial

from django.contrib import messages
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts.notifications import pay_again_send, payment_notify, refund_notify
from billing import payments, receipts, refunds
from billing.errors import BillingError, ProviderUnavailable
from billing.formatting import hours_text, iso_date, local, money_input, money_text
from billing.models import Payment, Receipt, Refund
from billing.payment_reviews import payment_review_resolve
from billing.reports import payment_timeline
from billing.versions import console_version
from portal.console.access import console_view, fresh_code_redirect, is_finance
from portal.console.filters import PaymentFilter, RefundFilter
from portal.console.forms import ReceiptResendForm, RefundForm
from portal.console.tables import PaymentTable, RefundTable
from portal.console.views.common import PER_PAGE, action_done, action_form, list_page, reason_action, table_page
from portal.downloads import receipt_file
from portal.page_cache import page_cached
from portal.ratelimits import client_ip
from portal.tables import table_seek

SEEK_TABLE = "console/_seek_table.html"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The export's columns are field names (for spreadsheets and scripts), the same in every language.
CSV_COLUMNS = ["id", "created_at", "email", "plan", "amount", "currency", "status", "failure_code", "payment_intent"]
# A receipt resent: the dialog's title and the message after, by the receipt's kind.
RESEND_TITLES = {
    Receipt.Kind.RECEIPT: _("Resend receipt %(number)s"),
    Receipt.Kind.CREDIT_NOTE: _("Resend credit note %(number)s"),
    Receipt.Kind.CANCELLATION: _("Resend credit note cancellation %(number)s"),
}
RESEND_DONE = {
    Receipt.Kind.RECEIPT: _("Receipt %(number)s is on its way to %(to)s."),
    Receipt.Kind.CREDIT_NOTE: _("Credit note %(number)s is on its way to %(to)s."),
    Receipt.Kind.CANCELLATION: _("Credit note cancellation %(number)s is on its way to %(to)s."),
}


def payments_filtered(request):
    payments = Payment.objects.select_related("account__user", "plan", "payment_method")
    return PaymentFilter(request.GET, queryset=payments)


@console_view
@require_GET
def payment_list(request):
    """The payments, from the cache while the console's version stays (billing.versions): what the
    rows show (payment, student, card, plan) renews it when it changes."""
    versions = ("console payments", console_version(), is_finance(request.user), request.user.is_superuser)
    return page_cached(request, versions=versions, render=lambda: (_payment_list(request), ()))


def _payment_list(request):
    found = payments_filtered(request)
    # Paged by its sort key: the 2,000th page of a million payments costs what the first does.
    table = table_seek(request, PaymentTable(found.qs, template_name=SEEK_TABLE), per_page=PER_PAGE)
    return list_page(
        request,
        title=gettext("Payments"),
        table=table,
        filterset=found,
        export_url=reverse("console:payments_export"),
    )


@console_view
@require_GET
def payment_export(request):
    """The filtered payments as CSV, streamed row by row so a million rows never sit in memory. A
    filter that is not valid exports nothing (never every row, as if unfiltered): the list says why."""
    found = payments_filtered(request)
    if not found.is_valid():
        messages.error(request, gettext("Nothing was exported: correct the filters below, then export again."))
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
    return list_page(request, title=gettext("Refunds"), table=table, filterset=found)


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
                gettext("Refund requested, but Stripe did not answer: it is waiting. Send it again from the payment."),
                redirect_to=_payment_url(payment),
                level=messages.WARNING,
            )
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            refund_notify(refund=refund)  # the student hears of hours taken back now, not at the next scan
            return action_done(
                request,
                gettext("Refunded %(amount)s; %(hours)s taken back.")
                % {
                    "amount": money_text(refund.amount_cents, refund.currency),
                    "hours": hours_text(refund.minutes_reversed),
                },
                redirect_to=_payment_url(payment),
            )
    return action_form(request, context | _refund_texts(payment))


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def payment_resolve(request, payment_id):
    """Finance closes a payment left for review, saying what was done (refund, hours added, ...)."""
    payment = get_object_or_404(Payment.objects.select_related("account__user"), pk=payment_id)
    intro = gettext(
        "%(reason)s Say what was done about it (a refund, hours added by hand, nothing needed) "
        "and why: it is kept in the audit log."
    ) % {"reason": payment.failure_message}
    return reason_action(
        request,
        partial(payment_review_resolve, payment=payment),
        done=gettext("Payment marked as resolved."),
        redirect_to=_payment_url(payment),
        texts={
            "title": gettext("Resolve payment %(number)s") % {"number": payment.pk},
            "intro": intro,
            "submit": gettext("Mark as resolved"),
        },
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def payment_pay_again(request, payment_id):
    """Finance asks the student (alert and email) to pay again for a failed package payment."""
    payment = get_object_or_404(Payment.objects.select_related("account__user", "plan"), pk=payment_id)
    intro = gettext(
        "%(email)s gets an alert and an email whose button pays %(amount)s for %(plan)s again, with one of their "
        "saved cards. Say why: it is kept in the audit log."
    ) % {
        "email": payment.account.user.email,
        "amount": money_text(payment.amount_cents, payment.currency),
        "plan": payment.plan.name,
    }
    return reason_action(
        request,
        partial(pay_again_send, payment=payment),
        done=gettext("The student has been asked to pay again."),
        redirect_to=_payment_url(payment),
        texts={
            "title": gettext("Ask to pay again for payment %(number)s") % {"number": payment.pk},
            "intro": intro,
            "submit": gettext("Send the alert"),
        },
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def payment_retry(request, payment_id):
    """Finance's one retry of a payment that failed without reaching the bank."""
    payment = get_object_or_404(
        Payment.objects.select_related("account__user", "plan", "payment_method"), pk=payment_id
    )
    words = {
        "amount": money_text(payment.amount_cents, payment.currency),
        "plan": payment.plan.name,
        "reason": payment.failure_message,
    }
    if payment.payment_method:
        intro = gettext(
            "Charge %(amount)s for %(plan)s to %(card)s again, once: this payment failed without reaching the bank "
            "(%(reason)s) The student is told the outcome. Say why: it is kept in the audit log."
        ) % (words | {"card": payment.payment_method.label})
    else:
        intro = (
            gettext(
                "Charge %(amount)s for %(plan)s to the card again, once: this payment failed without reaching the bank "
                "(%(reason)s) The student is told the outcome. Say why: it is kept in the audit log."
            )
            % words
        )
    return reason_action(
        request,
        partial(_retry, payment=payment),
        done=_retry_message,
        redirect_to=_payment_url(payment),
        texts={
            "title": gettext("Retry payment %(number)s") % {"number": payment.pk},
            "intro": intro,
            "submit": gettext("Retry the charge"),
            "danger": True,
        },
    )


def _retry(*, payment, **staff):
    retry = payments.payment_retry(payment=payment, **staff)
    payment_notify(payment=retry)  # the student hears of the outcome (or the 3-D Secure check) at once
    return retry


def _retry_message(retry):
    words = {
        "number": retry.pk,
        "amount": money_text(retry.amount_cents, retry.currency),
        "hours": hours_text(retry.minutes),
        "reason": retry.failure_message,
    }
    if retry.status == Payment.Status.SUCCEEDED:
        return (
            messages.SUCCESS,
            gettext("The retry (payment %(number)s) went through: %(amount)s charged, %(hours)s added.") % words,
        )
    if retry.status == Payment.Status.REQUIRES_ACTION:
        return (
            messages.WARNING,
            gettext(
                "The student's bank asks them to confirm the retry (payment %(number)s) with 3-D Secure; they have an "
                "alert to complete it."
            )
            % words,
        )
    if retry.status == Payment.Status.FAILED:
        return messages.ERROR, gettext("The retry (payment %(number)s) failed too: %(reason)s") % words
    if retry.status == Payment.Status.NEEDS_REVIEW:
        return messages.WARNING, gettext("The retry (payment %(number)s) is left for review: %(reason)s") % words
    return (
        messages.INFO,
        gettext("Stripe has not answered the retry (payment %(number)s) yet; it is settled as soon as it does.")
        % words,
    )


def _refund_texts(payment):
    return {
        "title": gettext("Refund payment %(number)s") % {"number": payment.pk},
        "intro": gettext("%(email)s was charged %(amount)s for %(plan)s.")
        % {
            "email": payment.account.user.email,
            "amount": money_text(payment.charged_cents, payment.charged_currency),
            "plan": payment.plan.name,
        },
        "submit": gettext("Review the refund"),
    }


def _confirmation(amount, minutes, payment):
    return {
        "confirming": True,
        "intro": gettext(
            "Refund %(amount)s to %(email)s's card and take back %(hours)s from their package. Stripe sends the "
            "money at once; this cannot be undone."
        )
        % {
            "amount": money_text(amount, payment.charged_currency),
            "email": payment.account.user.email,
            "hours": hours_text(minutes),
        },
        "submit": gettext("Confirm the refund"),
        "danger": True,
    }


def _within_limits(form, defaults, payment):
    if form.cleaned_data["amount"] > defaults.refundable_cents:
        form.add_error(
            "amount",
            gettext("At most %(amount)s can still be refunded.")
            % {"amount": money_text(defaults.refundable_cents, payment.charged_currency)},
        )
    if form.cleaned_data["hours"] > defaults.unused_minutes:
        form.add_error(
            "hours",
            gettext("Only %(hours)s of this package are left to take back.")
            % {"hours": hours_text(defaults.unused_minutes)},
        )
    return form.is_valid()


@console_view(finance=True)
@require_POST
def refund_send(request, refund_id):
    refund = get_object_or_404(Refund, pk=refund_id)
    try:
        sent = refunds.refund_send(refund=refund, actor=request.user, ip_address=client_ip(request))
    except ProviderUnavailable:
        messages.error(request, gettext("Stripe did not answer again. Try once more in a minute."))
    except BillingError as refused:
        messages.error(request, str(refused))
    else:
        refund_notify(refund=sent)
        level, text = _send_again_message(sent)
        messages.add_message(request, level, text)
    return redirect(_payment_url(refund.payment))


def _send_again_message(refund):
    words = {"amount": money_text(refund.amount_cents, refund.currency), "status": refund.get_status_display().lower()}
    if refund.send_outcome == refunds.SendOutcome.SENT:
        return messages.SUCCESS, gettext(
            "The refund of %(amount)s was sent to Stripe, which answered: %(status)s."
        ) % words
    if refund.send_outcome == refunds.SendOutcome.FOUND:
        return (
            messages.SUCCESS,
            gettext(
                "Stripe had already made the refund of %(amount)s (its answer had not reached us); it is recorded now "
                "(%(status)s). Nothing was sent again."
            )
            % words,
        )
    return (
        messages.INFO,
        gettext("The refund of %(amount)s already had its answer from Stripe (%(status)s); nothing was sent.") % words,
    )


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
        done = RESEND_DONE[receipt.kind] % {"number": receipt.number, "to": to}
        return action_done(request, done, redirect_to=back)
    title = RESEND_TITLES[receipt.kind] % {"number": receipt.number}
    return action_form(request, {"form": form, "title": title, "submit": gettext("Send")})


def _payment_url(payment):
    return reverse("console:payment", args=[payment.pk])
