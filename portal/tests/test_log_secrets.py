"""No Stripe key, webhook secret, client secret or card number in any log line: checked on the log of
the payment flows as a student and Stripe drive them (localstripe over HTTP), with every logger at
DEBUG, the most an operator can turn on."""

import re

import pytest
from django.conf import settings
from django.urls import reverse

from billing import samples
from billing.models import Payment
from billing.payments import payment_token_issue
from billing.stripe_gateway import setup_intent_retrieve
from billing.tests.builders import make_plan
from billing.tests.webhook_delivery import deliver
from portal.tests.test_request_logs import captured_log  # noqa: F401 (a fixture)

HTMX = {"HX-Request": "true", "HX-Target": "payment-result"}
CARDS = ("4242424242424242", "4000002760003184")


def save_card(client, localstripe, number):
    client_secret = client.post(reverse("student:card_setup")).json()["client_secret"]
    setup_intent = setup_intent_retrieve(client_secret.split("_secret_")[0])
    localstripe.browser_confirm_setup(setup_intent, number)
    client.post(reverse("student:card_save"), {"setup_intent": setup_intent.id})
    return client_secret


def buy(client, account, plan, card):
    token = payment_token_issue(account=account, plan=plan, kind="purchase")
    page = client.post(reverse("student:pay"), {"token": token, "payment_method": card.pk}, headers=HTMX)
    return page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_payment_flows_log_no_secret(localstripe, student_client, student, captured_log):  # noqa: F811
    plan = make_plan("Standard", minutes=600, price_cents=15000, validity_days=90)
    client_secrets = [save_card(student_client, localstripe, number) for number in CARDS]
    plain_card, three_d_secure_card = student.payment_methods.order_by("pk")

    buy(student_client, student, plan, plain_card)  # paid at once: a lot, a receipt (PDF and email)
    page = buy(student_client, student, plan, three_d_secure_card)  # handed to the bank's check
    client_secrets += re.findall(r'data-client-secret="([^"]+)"', page)
    localstripe.browser_authenticate(client_secrets[-1], success=True)
    waiting = Payment.objects.get(status="requires_action")
    student_client.post(reverse("student:payment_refresh", args=[waiting.pk]), headers=HTMX)
    paid = Payment.objects.filter(status="succeeded").first()
    deliver(student_client, samples.event("charge.refunded", samples.charge_refunded(paid, [samples.refund(paid)])))
    deliver(student_client, samples.event("charge.refunded", {"id": "ch_forged"}), secret="whsec_forged")

    log = captured_log.text
    routes = {line.get("route") for line in captured_log.lines("portal.requests")}
    assert {"cards/setup/", "cards/save/", "pay/", "payments/<int:payment_id>/refresh/"} <= routes
    assert "billing/stripe/webhook/" in routes or any("webhook" in (route or "") for route in routes)
    assert captured_log.lines("stripe"), "Stripe's library lines are in the log too"
    assert len(client_secrets) == 3
    for secret in [settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET, "whsec_forged", *client_secrets]:
        assert secret not in log
    for number in CARDS:
        assert number not in log
    assert "_secret_" not in log
