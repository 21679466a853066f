"""Where real Stripe answers differently from localstripe, the answers come from Stripe's API
reference, served at the HTTP boundary; everything else still goes to localstripe."""

from urllib.parse import parse_qs

import pytest

from alerts.models import Notification
from alerts.notifications import alerts_scan
from billing import payments, samples
from billing.fraud.rules import fraud_rules_check
from billing.models import Payment
from billing.tests.builders import add_card, make_plan, make_student
from billing.tests.network import LossyProxy

pytestmark = pytest.mark.django_db


def charge_through(localstripe, settings, canned):
    account = make_student()
    card = add_card(account, localstripe)
    plan = make_plan()
    token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
    proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": canned})
    settings.STRIPE_API_BASE = proxy.url
    try:
        return payments.payment_start(account=account, token=token), card
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url


def intent_shape(*, payment_id, account_id):
    """The PaymentIntent Stripe made for our payment when its off-session charge needed 3-D Secure."""
    return {
        "id": "pi_real_shape",
        "object": "payment_intent",
        "amount": 15000,
        "currency": "eur",
        "status": "requires_payment_method",
        "client_secret": "pi_real_shape_secret_abc",
        "payment_method": None,
        "metadata": {"payment_id": str(payment_id), "account_id": str(account_id)},
        "last_payment_error": {
            "code": "authentication_required",
            "decline_code": "authentication_required",
            "message": "Your card was declined. This transaction requires authentication.",
            "type": "card_error",
        },
    }


def authentication_required(request_body):
    sent = parse_qs(request_body.decode())  # Stripe echoes back the metadata we sent
    intent = intent_shape(payment_id=sent["metadata[payment_id]"][0], account_id=sent["metadata[account_id]"][0])
    return 402, {
        "error": {
            "code": "authentication_required",
            "decline_code": "authentication_required",
            "message": "Your card was declined. This transaction requires authentication.",
            "type": "card_error",
            "payment_intent": intent,
        }
    }


def test_a_402_authentication_required_hands_over_to_3d_secure(localstripe, settings):
    payment, _ = charge_through(localstripe, settings, authentication_required)

    assert payment.status == Payment.Status.REQUIRES_ACTION
    assert payment.stripe_payment_intent_id == "pi_real_shape"
    assert payment.lot is None


def test_a_400_resource_missing_card_is_put_aside_not_an_error(localstripe, settings):
    def no_such_payment_method(request_body):
        return 400, {
            "error": {
                "code": "resource_missing",
                "message": "No such PaymentMethod: 'pm_123'",
                "param": "payment_method",
                "type": "invalid_request_error",
            }
        }

    payment, card = charge_through(localstripe, settings, no_such_payment_method)

    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message.startswith("This card is no longer available")
    card.refresh_from_db()
    assert card.removed_at is not None


def test_any_other_refusal_fails_the_payment_with_a_plain_message(localstripe, settings):
    def amount_too_small(request_body):
        return 400, {
            "error": {
                "code": "amount_too_small",
                "message": "Amount must be at least €0.50",
                "type": "invalid_request_error",
            }
        }

    payment, _ = charge_through(localstripe, settings, amount_too_small)

    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message == payments.REFUSED
    assert "€0.50" not in payment.failure_message  # Stripe's own words stay in our logs


def test_a_3d_secure_payment_cancelled_at_stripe_is_stored_as_cancelled_not_as_a_decline(localstripe, settings, send):
    payment, _ = charge_through(localstripe, settings, authentication_required)
    # The student never completed the check and the intent was cancelled: Stripe still carries the
    # off-session attempt's last_payment_error on it.
    cancelled = intent_shape(payment_id=payment.pk, account_id=payment.account_id) | {
        "status": "canceled",
        "canceled_at": 1767225600,
        "cancellation_reason": "abandoned",
    }
    proxy = LossyProxy(localstripe.url, canned={r"^GET /v1/payment_intents/pi_real_shape$": (200, cancelled)})
    settings.STRIPE_API_BASE = proxy.url
    settings.FRAUD_DECLINE_STREAK = 1
    try:
        send(samples.event("payment_intent.canceled", cancelled))
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url

    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (Payment.Status.FAILED, "canceled")
    assert payment.failure_message == payments.CANCELLED
    alerts_scan()
    assert not Notification.objects.filter(kind=Notification.Kind.PAYMENT_FAILED).exists()
    assert fraud_rules_check(account=payment.account, payment=payment) == []  # not a decline
