"""The student's copy of all their data (portal.privacy), downloaded from the account page. No id
in the URL: a student only ever gets their own. A GET whose only effect is counting against a rate
limit, since each copy reads every record and every receipt."""

from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.formatting import iso_date
from billing.ledger import account_open
from portal.downloads import privacy_export_file
from portal.privacy import privacy_export
from portal.ratelimits import rate_limited
from portal.student.access import student_view


@require_GET
@student_view
@rate_limited("privacy_export")
def data_export(request):
    archive_file = privacy_export(account=account_open(user=request.user))
    return privacy_export_file(archive_file, f"my-data-{iso_date(timezone.now())}.zip")
