"""The console's queues follow changes made elsewhere: each page's poller sends the digest of what it
shows, an unchanged poll is a 304 with nothing sent, a change answers the page with its new digest."""

import html
import json
import re

import pytest
from django.urls import reverse

from billing import samples
from billing.events import webhook_event_ingest
from billing.models import WebhookEvent

QUEUES = ["console:index", "console:disputes", "console:flags", "console:webhooks"]
POLL = {"HX-Request": "true", "HX-Target": "live-region"}


def etag_on(response):
    poller = re.search(r'<div id="live"[^>]*>', response.content.decode()).group(0)
    return json.loads(html.unescape(re.search(r'hx-headers="([^"]*)"', poller).group(1)))["If-None-Match"]


def poll(client, url, etag):
    return client.get(url, headers=POLL | {"If-None-Match": etag})


def event_fails():
    """A Stripe event whose processing failed: counted on the overview, listed in the queue."""
    stripe_event = samples.event("customer.created", {"id": "cus_live", "object": "customer"})
    webhook_event_ingest(event=stripe_event)
    WebhookEvent.objects.filter(stripe_event_id=stripe_event["id"]).update(status=WebhookEvent.Status.FAILED)


@pytest.mark.parametrize("name", QUEUES)
def test_an_unchanged_queue_is_not_modified(finance_client, name):
    url = reverse(name)
    shown = etag_on(finance_client.get(url))

    response = poll(finance_client, url, shown)

    assert response.status_code == 304 and response.content == b""


@pytest.mark.parametrize("name", ["console:index", "console:webhooks"])
def test_a_webhook_arriving_changes_the_queue(finance_client, name, django_capture_on_commit_callbacks):
    url = reverse(name)
    shown = etag_on(finance_client.get(url))
    with django_capture_on_commit_callbacks():
        event_fails()

    response = poll(finance_client, url, shown)

    assert response.status_code == 200
    assert 'id="live-region"' in response.content.decode()
    assert etag_on(response) == response["ETag"] != shown
    assert poll(finance_client, url, response["ETag"]).status_code == 304


def test_the_poll_keeps_the_pages_filters(finance_client):
    url = reverse("console:webhooks") + "?status=waiting"
    page = finance_client.get(url)

    assert f'hx-get="{html.escape(url)}"' in page.content.decode()


def test_support_follow_the_queues_too(support_client):
    url = reverse("console:flags")
    assert poll(support_client, url, etag_on(support_client.get(url))).status_code == 304


def test_a_student_cannot_poll_a_queue(student_client):
    assert student_client.get(reverse("console:index"), headers=POLL).status_code == 404


def test_pages_that_do_not_follow_changes_have_no_poller(finance_client):
    assert 'id="live"' not in finance_client.get(reverse("console:audit")).content.decode()
