"""A student's privacy requests in the console: a copy of all their data (staff of either level,
audited) and their erasure (Finance, after a page that says what goes and what stays, with their
email typed to confirm)."""

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.http import require_http_methods, require_POST

from billing.errors import BillingError
from billing.formatting import iso_date
from billing.models import Account
from portal import privacy
from portal.console.access import console_view
from portal.console.privacy_forms import ErasureForm
from portal.console.views.common import action_done
from portal.downloads import privacy_export_file
from portal.ratelimits import client_ip

# In English (tests name it); translated where it is shown.
ERASED = gettext_noop("The student is erased. Their receipts, payments and ledger are kept, naming no one.")


@console_view
@require_POST
def student_data_export(request, account_id):
    """The student's ZIP, as they would download it themselves. A POST: each copy is audited."""
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    archive_file = privacy.privacy_export_by_staff(account=account, actor=request.user, ip_address=client_ip(request))
    return privacy_export_file(archive_file, f"student-{account.pk}-data-{iso_date(timezone.now())}.zip")


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def student_erase(request, account_id):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = ErasureForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            privacy.student_erase(
                account=account,
                actor=request.user,
                email=form.cleaned_data["email"],
                reason=form.cleaned_data["reason"],
                ip_address=client_ip(request),
            )
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            return action_done(request, gettext(ERASED), redirect_to=reverse("console:student", args=[account.pk]))
    context = {
        "account": account,
        "form": form,
        "url": request.get_full_path(),
        # Said before anything is typed; once posted, the form's own error says it.
        "refusal": "" if form.is_bound else privacy.erasure_refusal(account=account),
    }
    template = "console/student_erase.html#form" if request.htmx else "console/student_erase.html"
    return render(request, template, context)
