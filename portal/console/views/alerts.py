"""Staff alerts in the console: the header's bell, the inbox, and each person's email settings.
Everyone sees only the staff kinds their role is offered (alerts.staff.staff_kinds_for)."""

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from alerts.notifications import email_preferences_save, notification_mark_read
from alerts.selectors import emailed_kinds, inbox, unread_count
from alerts.staff import staff_kinds_for
from portal.console.access import console_view
from portal.console.forms import AlertReadForm, StaffEmailPreferencesForm
from portal.console.tables import StaffNotificationTable
from portal.console.views.common import table_page

# English here, for the tests to find; translated when shown.
PREFERENCES_SAVED = gettext_noop("Your email choices are saved. In the console you always see every alert.")


@console_view
@require_GET
def alert_bell(request):
    """The console header's bell: the unread count, one indexed query, polled by HTMX."""
    unread = unread_count(user=request.user, kinds=staff_kinds_for(request.user))
    context = {"unread": unread, "poll_seconds": settings.ALERTS_BELL_POLL_SECONDS}
    return render(request, "console/_staff_bell.html", context)


@console_view
@require_GET
def alert_inbox(request):
    return render(request, "console/alerts.html", {"table": _inbox_table(request)})


def _inbox_table(request):
    table = StaffNotificationTable(inbox(user=request.user, kinds=staff_kinds_for(request.user)), prefix="alerts-")
    return table_page(request, table)


@console_view
@require_POST
def alerts_mark_read(request):
    """Mark one alert read (the form's `alert`), or all of them; another person's alert is not found."""
    form = AlertReadForm(request.POST)
    if not form.is_valid():
        raise Http404("No such alert.")
    alert_id, kinds = form.cleaned_data["alert"], staff_kinds_for(request.user)
    changed = notification_mark_read(user=request.user, notification_id=alert_id, kinds=kinds)
    if alert_id is not None and not changed and not inbox(user=request.user, kinds=kinds).filter(pk=alert_id).exists():
        raise Http404("No such alert.")
    if not request.htmx:
        return redirect("console:alerts")
    response = render(request, "console/alerts.html#inbox", {"table": _inbox_table(request)})
    return trigger_client_event(response, "alertsChanged")


@console_view
@require_http_methods(["GET", "POST"])
def alert_preferences(request):
    kinds = staff_kinds_for(request.user)
    if request.method == "POST":
        form = StaffEmailPreferencesForm(request.POST, kinds=kinds)
        if form.is_valid():
            email_preferences_save(user=request.user, emailed_kinds=form.cleaned_data["emailed"], offered_kinds=kinds)
            messages.success(request, gettext(PREFERENCES_SAVED))
            return redirect("console:alert_preferences")
    else:
        form = StaffEmailPreferencesForm(
            kinds=kinds, initial={"emailed": emailed_kinds(user=request.user, offered_kinds=kinds)}
        )
    return render(request, "console/alert_preferences.html", {"form": form})
