"""`manage.py stripe_send_event subscription-...`: the demo's way to renew, fail and end a
subscription the stand-in cannot, through the real webhook endpoint and handlers."""

import pytest
from django.core.management import call_command

from billing.models import Payment, Subscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_subscription(localstripe):
    call_command("seed_demo", "--not-production")
    return Subscription.objects.get(account__user__email="dina.student@example.com")


def send(kind, live_server):
    call_command("stripe_send_event", kind, url=f"{live_server.url}/billing/webhooks/stripe/")


def test_a_renewal_credits_the_next_periods_lot_once_with_a_receipt(demo_subscription, live_server):
    first_end = demo_subscription.current_period_end.replace(microsecond=0)  # Stripe counts in seconds

    send("subscription-renewal", live_server)

    renewal = demo_subscription.payments.exclude(stripe_invoice_id__startswith="in_demo").get()
    assert renewal.status == Payment.Status.SUCCEEDED and renewal.lot.minutes_purchased == 480
    assert renewal.period_start == first_end and hasattr(renewal, "receipt")
    demo_subscription.refresh_from_db()
    assert demo_subscription.current_period_start == first_end


def test_a_failed_renewal_makes_it_past_due_and_a_cancel_ends_it(demo_subscription, live_server):
    send("subscription-payment-failed", live_server)
    demo_subscription.refresh_from_db()
    assert demo_subscription.status == Subscription.Status.PAST_DUE and demo_subscription.failure_message

    send("subscription-canceled", live_server)
    demo_subscription.refresh_from_db()
    assert demo_subscription.status == Subscription.Status.CANCELED and demo_subscription.ended_at is not None
