"""A student's statement of account, downloaded by staff (Support and Finance alike: it only reads)
as PDF or CSV for any range of days, in the staff member's language and the student's time zone."""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from billing.models import Account
from billing.statements import statement_build
from portal.console.access import console_view
from portal.downloads import statement_csv_file, statement_pdf_file
from portal.statements import StatementRangeForm


@console_view
@require_GET
def statement_pdf(request, account_id):
    return _download(request, account_id, statement_pdf_file)


@console_view
@require_GET
def statement_csv(request, account_id):
    return _download(request, account_id, statement_csv_file)


def _download(request, account_id, file):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = StatementRangeForm.for_query(request.GET, account=account)
    if not form.is_valid():
        context = {"account": account, "statement_form": form}
        return render(request, "console/statement.html", context, status=400)
    return file(statement_build(account=account, **form.cleaned_data))
