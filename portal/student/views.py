"""The student's pages: a thin layer over billing's selectors."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_tables2 import RequestConfig

from billing.ledger import account_open
from billing.models import Lot
from billing.selectors import balance_summary, lot_for_student, lot_history, plans_for_sale, usage_history
from portal.student.tables import LotHistoryTable, PurchaseTable, UsageTable

# Fragments of the dashboard an HTMX request may ask for by its target's id.
DASHBOARD_FRAGMENTS = {"balance", "lots", "usage-table", "purchase-table"}


@require_GET
@login_required
@vary_on_headers("HX-Request", "HX-Target")
def dashboard(request):
    if request.user.is_staff:
        return redirect("console:index")
    account = account_open(user=request.user)
    summary = balance_summary(account=account)
    usage_table = UsageTable(usage_history(account=account), prefix="usage-")
    purchase_table = PurchaseTable(summary.all_lots, prefix="purchases-")
    config = RequestConfig(request, paginate={"per_page": 10})
    config.configure(usage_table)
    config.configure(purchase_table)
    context = {
        "summary": summary,
        "usage_table": usage_table,
        "purchase_table": purchase_table,
        "plans": plans_for_sale(),
    }
    template = "portal/dashboard.html"
    if request.htmx and request.htmx.target in DASHBOARD_FRAGMENTS:
        template = f"{template}#{request.htmx.target}"
    return render(request, template, context)


@require_GET
@login_required
def lot_detail(request, lot_id):
    try:
        lot = lot_for_student(user=request.user, lot_id=lot_id)
    except Lot.DoesNotExist:
        raise Http404("No such package.") from None
    history = LotHistoryTable(lot_history(lot=lot))
    return render(request, "portal/lot_detail.html", {"lot": lot, "history": history})
