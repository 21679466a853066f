"""Where real Stripe answers differently from localstripe, the answers come from Stripe's API
reference, served at the HTTP boundary; everything else still goes to localstripe."""

from urllib.parse import parse_qs

import pytest

from billing import payments
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


def test_a_402_authentication_required_hands_over_to_3d_secure(localstripe, settings):
    def authentication_required(request_body):
        sent = parse_qs(request_body.decode())  # Stripe echoes back the metadata we sent
        return 402, {
            "error": {
                "code": "authentication_required",
                "decline_code": "authentication_required",
                "message": "Your card was declined. This transaction requires authentication.",
                "type": "card_error",
                "payment_intent": {
                    "id": "pi_real_shape",
                    "object": "payment_intent",
                    "amount": 15000,
                    "currency": "eur",
                    "status": "requires_payment_method",
                    "client_secret": "pi_real_shape_secret_abc",
                    "payment_method": None,
                    "metadata": {
                        "payment_id": sent["metadata[payment_id]"][0],
                        "account_id": sent["metadata[account_id]"][0],
                    },
                    "last_payment_error": {"code": "authentication_required", "type": "card_error"},
                },
            }
        }

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
