"""What the webhook intake costs: one query to store a new event and one enqueue, none for a refused
one; the event's unique Stripe id, not a look-up first, keeps a repeated delivery from being stored
or queued twice, even when the deliveries arrive at the same moment."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from billing import events, samples
from billing.models import WebhookEvent
from billing.tests.concurrency import run_at_once
from billing.tests.webhook_delivery import deliver


def intent_event(event_id="evt_intake_1"):
    """A payment_intent.succeeded about an intent that is not ours (processing marks it ignored)."""
    intent = {"id": "pi_elsewhere", "object": "payment_intent", "amount": 15000, "currency": "eur", "metadata": {}}
    return samples.event("payment_intent.succeeded", intent, event_id=event_id)


@pytest.mark.django_db
def test_a_new_event_is_stored_in_one_query_and_queued_once(
    client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    stripe_event = intent_event()

    with django_capture_on_commit_callbacks() as queued, django_assert_num_queries(1):
        response = deliver(client, stripe_event)

    assert response.status_code == 200
    assert len(queued) == 1
    stored = WebhookEvent.objects.get()
    assert (stored.stripe_event_id, stored.type, stored.api_version, stored.livemode, stored.source) == (
        "evt_intake_1",
        "payment_intent.succeeded",
        "2024-06-20",
        False,
        "webhook",
    )
    assert (stored.status, stored.attempts, stored.payment_intent_id) == ("pending", 0, "pi_elsewhere")
    assert stored.payload == stripe_event
    assert stored.stripe_created_at == datetime.fromtimestamp(stripe_event["created"], tz=UTC)
    assert stored.received_at is not None


@pytest.mark.django_db
def test_a_repeated_delivery_is_answered_200_in_two_queries_and_queues_nothing(
    client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    deliver(client, intent_event())

    with django_capture_on_commit_callbacks() as queued, django_assert_num_queries(2):
        response = deliver(client, intent_event())

    assert response.status_code == 200
    assert queued == []
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_a_badly_signed_event_costs_no_query(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = deliver(client, intent_event(), secret="whsec_someone_else")

    assert response.status_code == 400


@pytest.mark.django_db
def test_ingesting_an_event_again_hands_back_the_one_stored(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        first, created = events.webhook_event_ingest(event=intent_event())
        again, created_again = events.webhook_event_ingest(event=intent_event("evt_intake_1"))

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again == WebhookEvent.objects.get()
    assert len(queued) == 1
    assert first.payload == WebhookEvent.objects.get().payload


@pytest.mark.django_db(transaction=True)
def test_five_deliveries_of_one_event_at_the_same_moment_store_it_once_and_process_it_once():
    def one_delivery():
        return deliver(Client(), intent_event()).status_code

    answers, errors = run_at_once(one_delivery, 5)

    assert errors == []
    assert answers == [200] * 5
    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.attempts) == ("ignored", 1)  # Huey runs inline in tests: processed once
