"""The webhook endpoint: only signed, recent Stripe events get in; each is stored once and answered at once."""

import time

import pytest
from django.core.cache import cache

from billing import samples
from billing.models import WebhookEvent
from billing.tests.webhook_delivery import URL, deliver

pytestmark = pytest.mark.django_db


def unknown_event(event_id="evt_unknown_1"):
    return samples.event("invoice.finalized", {"id": "in_1", "object": "invoice"}, event_id=event_id)


def test_a_signed_event_is_stored_and_answered_200(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, unknown_event())

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.stripe_event_id, event.type, event.api_version) == (
        "evt_unknown_1",
        "invoice.finalized",
        "2024-06-20",
    )
    assert event.payload["data"]["object"]["id"] == "in_1"
    assert event.status == "ignored"  # an unknown type is kept, and marked ignored
    assert event.attempts == 1 and event.processing_ms is not None


def test_the_same_event_five_times_is_stored_once(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        responses = [deliver(client, unknown_event()) for _ in range(5)]

    assert [response.status_code for response in responses] == [200] * 5
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().attempts == 1


@pytest.mark.parametrize(
    ("how", "tamper"),
    [
        ("wrong secret", {"secret": "whsec_someone_else"}),
        ("stale timestamp", {"timestamp": int(time.time()) - 301}),
    ],
)
def test_a_badly_signed_event_is_refused_and_not_stored(client, how, tamper):
    cache.delete("billing:webhooks:rejected")

    response = deliver(client, unknown_event(), **tamper)

    assert response.status_code == 400, how
    assert not WebhookEvent.objects.exists()
    assert cache.get("billing:webhooks:rejected") == 1


def test_a_truncated_body_is_refused(client):
    payload = samples.body(unknown_event())
    header = samples.signature_header(payload, "whsec_test_portal")

    response = client.post(
        URL, data=payload[:-10], content_type="application/json", headers={"Stripe-Signature": header}
    )

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [b"not json at all", b"[1, 2, 3]", b'{"id": "evt_1"}', b'{"id": "evt_1", "type": "x", "data": {}}', b"\xff\xfe"],
)
def test_a_signed_body_that_is_not_an_event_is_refused(client, payload):
    response = deliver(client, None, payload=payload)

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_a_missing_signature_is_refused(client):
    response = client.post(URL, data=samples.body(unknown_event()), content_type="application/json")
    assert response.status_code == 400


def test_an_oversized_body_is_refused_unread(client):
    response = client.post(
        URL, data=b"x" * (600 * 1024), content_type="application/json", headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_only_post_is_allowed(client, method):
    assert getattr(client, method)(URL).status_code == 405


@pytest.mark.parametrize(
    "mutate",
    [
        lambda event: event.update(id="x" * 300),
        lambda event: event.update(created=10**20),
        lambda event: event["data"]["object"].update(note="\u0000"),
    ],
)
def test_signed_events_postgresql_could_not_store_are_refused(client, mutate):
    stripe_event = unknown_event()
    mutate(stripe_event)

    assert deliver(client, stripe_event).status_code == 400
    assert not WebhookEvent.objects.exists()


def test_a_signed_nan_is_refused(client):
    payload = samples.body(unknown_event()).replace(b'"in_1"', b"NaN")
    assert deliver(client, None, payload=payload).status_code == 400
