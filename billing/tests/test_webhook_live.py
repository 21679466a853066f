"""End to end: localstripe itself signs and delivers payment_intent.succeeded to the running site."""

import time

import pytest

from billing.models import LedgerEntry, Payment, WebhookEvent
from billing.tests.builders import make_paid_payment
from billing.tests.network import charge_answers_lost


def _settled_by_webhook(payment):
    return (
        Payment.objects.get(pk=payment.pk).status == "succeeded"
        and WebhookEvent.objects.filter(type="payment_intent.succeeded", status="processed").exists()
    )


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_the_event_that_settles_a_payment(live_server, localstripe, settings):
    localstripe.register_webhook(
        "portal-live-test", f"{live_server.url}/billing/webhooks/stripe/", settings.STRIPE_WEBHOOK_SECRET
    )
    try:
        with charge_answers_lost(localstripe, settings):
            payment = make_paid_payment(localstripe)  # Stripe charges; its answer never reaches us
        assert payment.status == "processing"

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _settled_by_webhook(payment):
            time.sleep(0.2)
    finally:
        # localstripe cannot forget a webhook; point this one at an event type it never sends.
        localstripe.register_webhook(
            "portal-live-test", f"{live_server.url}/billing/webhooks/stripe/", "unused", events=["none.ever"]
        )

    payment.refresh_from_db()
    assert payment.status == "succeeded"
    # Only this payment's event counts: localstripe may still be delivering earlier tests' events.
    [event] = [
        event
        for event in WebhookEvent.objects.filter(type="payment_intent.succeeded")
        if event.payload["data"]["object"]["id"] == payment.stripe_payment_intent_id
    ]
    assert event.status == "processed" and event.source == "webhook"
    assert LedgerEntry.objects.filter(kind="credit").count() == 1
