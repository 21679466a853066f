"""The student's statements of account: their own, as PDF or CSV, for any range of days (last
calendar month by default), and the choice of last month's by email on the first of each month.

There is no account id in these URLs: a student only ever gets their own statement. A range that
cannot be one (ending before it starts, too long, not dates) answers 400 with the form and why."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_POST

from billing.ledger import account_open
from billing.statements import statement_build, statement_emails_set
from portal.downloads import statement_csv_file, statement_pdf_file
from portal.statements import StatementEmailsForm, StatementRangeForm
from portal.student.access import student_view

# In English (tests name them); translated where they are shown.
EMAILS_ON = gettext_noop("On the first of each month we email you last month's statement.")
EMAILS_OFF = gettext_noop("We no longer email you a monthly statement. You can still download one here any time.")


@require_GET
@student_view
def statement_pdf(request):
    return _download(request, statement_pdf_file)


@require_GET
@student_view
def statement_csv(request):
    return _download(request, statement_csv_file)


def _download(request, file):
    account = account_open(user=request.user)
    form = StatementRangeForm.for_query(request.GET, account=account)
    if not form.is_valid():
        context = {"account": account, "statement_form": form}
        return render(request, "portal/statements.html", context, status=400)
    return file(statement_build(account=account, **form.cleaned_data))


@require_POST
@student_view
def statement_emails(request):
    """Save the monthly email choice: the choice's partial in place under HTMX, else back to the
    account page's statements section with a message."""
    account = account_open(user=request.user)
    form = StatementEmailsForm(request.POST)
    if not form.is_valid():  # a checkbox is never invalid; kept so a new field cannot slip through
        return render(request, "portal/statements.html", {"account": account}, status=400)
    account = statement_emails_set(account=account, enabled=form.cleaned_data["statement_emails"])
    notice = _(EMAILS_ON) if account.statement_emails else _(EMAILS_OFF)
    if not request.htmx:
        messages.success(request, notice)
        return redirect(f"{reverse('student:account')}#statements")
    context = {"account": account, "statement_emails_notice": notice}
    return render(request, "portal/_statement_section.html#statement-emails", context)
