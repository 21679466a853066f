"""The webhook log: Stripe's events as they reached us, their payloads, and retries."""

import json

from django import forms
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.events import events_retry_by_staff
from billing.models import WebhookEvent
from billing.models.webhooks import secrets_redacted
from portal.console.access import console_view
from portal.console.filters import WebhookEventFilter
from portal.console.tables import WebhookEventTable
from portal.console.views.common import action_done, action_form, list_page, table_page
from portal.live import live_page
from portal.ratelimits import client_ip


@console_view
@require_GET
@live_page
def webhook_list(request):
    events = WebhookEvent.objects.defer("payload")
    found = WebhookEventFilter(request.GET, queryset=events)
    table = table_page(request, WebhookEventTable(found.qs), lazy=True)
    return list_page(
        request, title=gettext("Stripe events"), table=table, filterset=found, template="console/webhooks.html"
    )


@console_view
@require_GET
def webhook_detail(request, event_id):
    event = get_object_or_404(WebhookEvent, pk=event_id)
    payload = secrets_redacted(event.payload)
    context = {
        "event": event,
        "payload": json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False),
        "body_removed": not event.payload,
    }
    return render(request, "console/webhook_detail.html", context)


@console_view
@require_POST
def webhook_retry(request, event_id):
    """Retry one event. From the table, its row is swapped with the event's new state."""
    event = get_object_or_404(WebhookEvent.objects.defer("payload"), pk=event_id)
    queued = events_retry_by_staff(actor=request.user, event=event, ip_address=client_ip(request))
    message = (
        gettext("Retried.") if queued else gettext("Nothing to retry: the event is not failed, waiting or orphaned.")
    )
    event.refresh_from_db()
    if request.htmx:
        table = WebhookEventTable([event], request=request)
        return render(request, "console/_table_row.html", {"table": table, "message": message})
    return action_done(request, message, redirect_to=reverse("console:webhook", args=[event.pk]))


@console_view
@require_http_methods(["GET", "POST"])
def webhook_retry_failed(request):
    """Retry every failed, waiting or orphaned event, once staff have seen how many that is."""
    if request.method == "POST" and "confirm" in request.POST:
        queued = events_retry_by_staff(actor=request.user, ip_address=client_ip(request))
        # The English says "event(s)", whatever the count; the other languages have their plural forms.
        done = ngettext(
            "%(count)d event(s) queued for another attempt.", "%(count)d event(s) queued for another attempt.", queued
        ) % {"count": queued}
        return action_done(request, done, redirect_to=reverse("console:webhooks"))
    retryable = WebhookEvent.objects.filter(status__in=WebhookEvent.RETRYABLE).count()
    count = {"count": retryable}
    return action_form(
        request,
        {
            "form": forms.Form(),
            "confirming": True,
            "title": gettext("Retry all failed events"),
            "intro": ngettext(
                "%(count)d event(s) that failed, wait or were orphaned will be processed again now.",
                "%(count)d event(s) that failed, wait or were orphaned will be processed again now.",
                retryable,
            )
            % count,
            "submit": ngettext("Retry %(count)d event(s)", "Retry %(count)d event(s)", retryable) % count,
        },
    )
