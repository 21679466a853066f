"""The webhook endpoint: only signed, recent Stripe events get in; each is stored once and answered at once."""

import io
import time

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from billing import samples
from billing.models import WebhookEvent
from billing.tests.webhook_delivery import URL, deliver
from billing.webhooks import MAX_BODY_BYTES

pytestmark = pytest.mark.django_db

UNREACHABLE = "redis://127.0.0.1:9/0"  # nothing listens on the discard port: a Redis that is down


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


def test_an_oversized_body_is_refused(client):
    response = client.post(
        URL, data=b"x" * (600 * 1024), content_type="application/json", headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


class CountedBody(io.BytesIO):
    """A request body that counts how many of its bytes the server read."""

    bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def chunked_post(client, body, signature="t=1,v1=00"):
    """A POST as gunicorn hands over a chunked body: no CONTENT_LENGTH, and an input that ends by itself."""
    environ = {"wsgi.input": body, "wsgi.input_terminated": True}
    return client.generic(
        "POST", URL, content_type="application/json", headers={"Stripe-Signature": signature}, **environ
    )


def test_a_chunked_body_over_the_cap_is_refused_after_reading_one_byte_past_it(client):
    body = CountedBody(b"x" * (5 * MAX_BODY_BYTES))

    response = chunked_post(client, body)

    assert response.status_code == 413
    assert body.bytes_read == MAX_BODY_BYTES + 1
    assert not WebhookEvent.objects.exists()


def test_a_chunked_signed_event_is_stored(client, django_capture_on_commit_callbacks):
    payload = samples.body(unknown_event())
    signature = samples.signature_header(payload, settings.STRIPE_WEBHOOK_SECRET)

    with django_capture_on_commit_callbacks(execute=True):
        response = chunked_post(client, CountedBody(payload), signature)

    assert response.status_code == 200
    assert WebhookEvent.objects.get().stripe_event_id == "evt_unknown_1"


@pytest.mark.parametrize(
    "header",
    [
        "t=1,v1=ü🎉",
        "t=1,v1=ü🎉".encode().decode("latin-1"),  # the same bytes, as a WSGI server decodes a header
    ],
)
def test_a_signature_header_that_is_not_ascii_is_refused_like_any_bad_signature(client, header):
    cache.delete("billing:webhooks:rejected")

    response = client.post(
        URL, data=samples.body(unknown_event()), content_type="application/json", headers={"Stripe-Signature": header}
    )

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert cache.get("billing:webhooks:rejected") == 1


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


class TestAnAddressWhoseSignaturesKeepFailing:
    @pytest.fixture(autouse=True)
    def stopped_clock(self, settings):
        settings.PORTAL_RATE_LIMITS = settings.PORTAL_RATE_LIMITS | {"webhook_bad_signature": {"ip": "3/h"}}
        with time_machine.travel(time.time(), tick=False):
            yield

    def test_its_failures_past_the_limit_are_answered_429(self, client):
        forged = [deliver(client, unknown_event(), secret="whsec_someone_else") for _ in range(5)]
        assert [answer.status_code for answer in forged] == [400, 400, 400, 429, 429]
        assert int(forged[-1]["Retry-After"]) > 0
        assert not WebhookEvent.objects.exists()

    def test_a_correctly_signed_event_from_that_address_is_still_taken(self, client):
        for _ in range(5):
            deliver(client, unknown_event(), secret="whsec_someone_else")
        assert deliver(client, unknown_event()).status_code == 200
        assert WebhookEvent.objects.count() == 1

    def test_good_deliveries_are_never_counted(self, client):
        codes = [deliver(client, unknown_event(f"evt_{n}")).status_code for n in range(5)]
        assert codes == [200] * 5

    def test_another_address_is_not_slowed(self, client):
        for _ in range(4):
            deliver(client, unknown_event(), secret="whsec_someone_else")
        other = Client(REMOTE_ADDR="198.51.100.4")
        assert deliver(other, unknown_event(), secret="whsec_someone_else").status_code == 400

    def test_a_cache_that_does_not_answer_lifts_the_limit_and_takes_events(self, client, settings):
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": UNREACHABLE}
        }
        assert deliver(client, unknown_event(), secret="whsec_someone_else").status_code == 400
        assert deliver(client, unknown_event()).status_code == 200
