"""The overview: today's and the month's money, what needs staff attention, and the audit log."""

from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from billing.models import AuditEntry
from billing.reports import console_overview, subscription_figures
from billing.versions import console_version
from portal.console.access import console_view, is_finance
from portal.console.charts import revenue_chart
from portal.console.filters import AuditFilter
from portal.console.tables import AuditTable
from portal.console.views.common import list_page, table_page
from portal.live import live_page
from portal.page_cache import page_cached


@console_view
@require_GET
@live_page
def overview(request):
    """The overview, from the cache while the console's version stays (billing.versions): every
    figure is a count or sum of rows that renew it when saved, or of an account's, which move it."""
    versions = ("console overview", console_version(), is_finance(request.user), request.user.is_superuser)
    return page_cached(request, versions=versions, render=lambda: _overview(request))


def _overview(request):
    figures = console_overview()
    context = {
        "overview": figures,
        "subscriptions": subscription_figures(),
        "chart": revenue_chart(figures.daily_revenue),
    }
    # The next evidence deadline shown is the first still ahead: it changes when that one passes.
    moments = [figures.next_evidence_due] if figures.next_evidence_due else []
    return render(request, "console/overview.html", context), moments


@console_view
@require_GET
def audit_log(request):
    found = AuditFilter(request.GET, queryset=AuditEntry.objects.all())
    table = table_page(request, AuditTable(found.qs), lazy=True)
    return list_page(request, title=gettext("Audit log"), table=table, filterset=found)
