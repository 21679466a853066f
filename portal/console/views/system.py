"""The System page: the background jobs and what the queue, the Stripe events and the payments in
flight look like, for Support and Finance alike (nothing on it changes anything)."""

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.operations import system_status
from portal.console.access import console_view


@console_view
@require_GET
def system(request):
    return render(request, "console/system.html", {"system": system_status(now=timezone.now())})
