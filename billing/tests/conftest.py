"""Fixtures of the billing tests."""

import pytest
import time_machine

from billing.models import WebhookEvent
from billing.tests.builders import make_plan
from billing.tests.fraud_attempts import NOW
from billing.tests.webhook_delivery import deliver


@pytest.fixture
def send(client, django_capture_on_commit_callbacks):
    """Deliver events through the endpoint; Huey runs in immediate mode, so they are processed too."""

    def send_all(*events):
        for stripe_event in events:
            with django_capture_on_commit_callbacks(execute=True):
                assert deliver(client, stripe_event).status_code == 200
        return [WebhookEvent.objects.get(stripe_event_id=stripe_event["id"]) for stripe_event in events]

    return send_all


@pytest.fixture
def frozen():
    """The clock stopped at fraud_attempts.NOW."""
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def plan():
    return make_plan("Standard", minutes=600, price_cents=15000, validity_days=90)
