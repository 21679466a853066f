"""The overview: today's and the month's money, what needs staff attention, and the audit log."""

from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from billing.models import AuditEntry
from billing.reports import console_overview, subscription_figures
from portal.console.access import console_view
from portal.console.charts import revenue_chart
from portal.console.filters import AuditFilter
from portal.console.tables import AuditTable
from portal.console.views.common import list_page, table_page
from portal.live import live_page


@console_view
@require_GET
@live_page
def overview(request):
    figures = console_overview()
    context = {
        "overview": figures,
        "subscriptions": subscription_figures(),
        "chart": revenue_chart(figures.daily_revenue),
    }
    return render(request, "console/overview.html", context)


@console_view
@require_GET
def audit_log(request):
    found = AuditFilter(request.GET, queryset=AuditEntry.objects.all())
    table = table_page(request, AuditTable(found.qs), lazy=True)
    return list_page(request, title=gettext("Audit log"), table=table, filterset=found)
