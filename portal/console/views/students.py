"""Students: search, a student's whole record, and the hours staff may change by hand."""

from functools import partial

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from alerts.models import Notification
from alerts.notifications import session_record
from billing import ledger
from billing.errors import BillingError
from billing.fraud import blocks
from billing.models import Account, AuditEntry, LedgerEntry, Lot, Payment, Subscription
from billing.selectors import balance_summary, cards_for_account
from portal.console.access import console_view
from portal.console.filters import StudentFilter
from portal.console.forms import AdjustmentForm, SessionForm
from portal.console.tables import AuditTable, LedgerTable, PaymentTable, StudentTable
from portal.console.views.common import action_done, action_form, list_page, reason_action, table_page
from portal.ratelimits import client_ip
from portal.tables import UsageTable

SECTION_ROWS = 10


@console_view
@require_GET
def student_list(request):
    found = StudentFilter(request.GET, queryset=Account.objects.select_related("user"))
    table = table_page(request, StudentTable(found.qs))
    return list_page(request, title="Students", table=table, filterset=found, template="console/students.html")


@console_view
@require_GET
def student_detail(request, account_id):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    payments = Payment.objects.filter(account=account).select_related("account__user", "plan", "payment_method")
    ledger_entries = LedgerEntry.objects.filter(account=account).select_related("lot", "usage", "actor").order_by("-id")
    tables = {
        "ledger-table": LedgerTable(ledger_entries, prefix="ledger-"),
        "usage-table": UsageTable(account.usages.all(), prefix="usage-"),
        "payments-table": PaymentTable(payments, prefix="payments-"),
        "audit-table": AuditTable(AuditEntry.objects.filter(account=account), prefix="audit-"),
    }
    target = request.htmx.target if request.htmx else None
    if target in tables:
        # One of the history tables was sorted or paged: only that table comes back.
        table = table_page(request, tables[target])
        return render(request, "portal/_swappable_table.html", {"table": table, "fragment_id": target})
    for table in tables.values():
        table_page(request, table)
    context = {
        "account": account,
        "summary": balance_summary(account=account),
        "lots": Lot.objects.filter(account=account).select_related("payment").order_by("-purchased_at"),
        "cards": cards_for_account(account=account),
        "subscriptions": Subscription.objects.filter(account=account).select_related("plan")[:SECTION_ROWS],
        "alerts": Notification.objects.filter(recipient=account.user).order_by("-created_at")[:SECTION_ROWS],
        "flags": account.fraud_flags.all()[:SECTION_ROWS],
        "sign_ins": account.user.sign_ins.all()[:SECTION_ROWS],
    } | {name.replace("-", "_"): table for name, table in tables.items()}
    return render(request, "console/student_detail.html", context)


@console_view
@require_http_methods(["GET", "POST"])
def session_create(request, account_id):
    """Record a tutoring session: it consumes hours, soonest-expiring package first."""
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = SessionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            session_record(
                account=account,
                minutes=data["duration"],
                occurred_at=data["occurred_at"],
                tutor=data["tutor"],
                subject=data["subject"],
                recorded_by=request.user,
                ip_address=client_ip(request),
            )
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            return action_done(request, "Session recorded.", redirect_to=_student_url(account))
    return action_form(
        request,
        {"form": form, "title": f"Record a session for {account.user.email}", "submit": "Record the session"},
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def hours_adjust(request, account_id):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = AdjustmentForm(request.POST or None, account=account)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ledger.lot_adjust_by_staff(
                lot=data["lot"],
                minutes=data["hours"],
                reason=data["reason"],
                actor=request.user,
                ip_address=client_ip(request),
            )
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            return action_done(request, "Hours adjusted.", redirect_to=_student_url(account))
    return action_form(
        request,
        {
            "form": form,
            "title": f"Adjust the hours of {account.user.email}",
            "intro": "Corrections are ledger entries with your name and reason; nothing is edited.",
            "submit": "Adjust the hours",
        },
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def student_block(request, account_id, block):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    verb = "Block" if block else "Unblock"
    return reason_action(
        request,
        partial(blocks.account_block if block else blocks.account_unblock, account=account),
        done="Student blocked from buying." if block else "Student may buy again.",
        redirect_to=_student_url(account),
        texts={
            "title": f"{verb} {account.user.email}",
            "intro": "A blocked student sees that purchases are paused instead of buy buttons."
            if block
            else "The student can buy hours again.",
            "submit": verb,
            "danger": block,
        },
    )


def _student_url(account):
    return reverse("console:student", args=[account.pk])
