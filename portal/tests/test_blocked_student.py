"""A blocked student: the dashboard says purchases are paused where its pay buttons were, and the pay
endpoint refuses without a word to Stripe."""

import pytest
from django.urls import reverse

from billing.cards import CARDS_PAUSED
from billing.fraud.blocks import account_block, account_unblock
from billing.models import Payment
from billing.payments import payment_token_issue
from billing.tests.builders import add_card, credit, make_plan
from billing.tests.network import LossyProxy

DASHBOARD = reverse("student:dashboard")
PAY = reverse("student:pay")
HTMX = {"HX-Request": "true", "HX-Target": "payment-result"}
PAUSED = "Purchases are paused on your account. Please contact your tutoring coordinator."


@pytest.fixture
def plan(db):
    return make_plan("Standard", minutes=600, price_cents=15000, validity_days=90, is_featured=True)


@pytest.fixture
def watch_stripe(localstripe, settings):
    """From the call on, every request the portal sends to Stripe is recorded in the list it returns
    (and answered with an error, never forwarded)."""
    calls = []

    def refuse(body):
        calls.append(body)
        return 500, {"error": {"type": "api_error", "message": "This test expected no call to Stripe."}}

    proxy = LossyProxy(localstripe.url, canned={r".": refuse})

    def watch():
        settings.STRIPE_API_BASE = proxy.url
        return calls

    yield watch
    proxy.close()
    settings.STRIPE_API_BASE = localstripe.url


def test_a_blocked_students_dashboard_says_why_instead_of_showing_pay_buttons(
    localstripe, student_client, student, plan, staff_user
):
    credit(student, 60, plan=plan)
    add_card(student, localstripe)
    account_block(account=student, actor=staff_user, reason="Confirmed card testing")

    text = student_client.get(DASHBOARD).content.decode()

    assert text.count(PAUSED) == 1  # said once, in the balance card
    assert text.count("Buying is paused on your account.") == 2  # where the renew and buy buttons were
    assert 'name="token"' not in text
    assert "Top up 10 h" not in text
    assert "Renew 10 h" not in text
    assert "Buy 10 h" not in text
    assert "Confirmed card testing" not in text  # staff's reason is not the student's business


def test_a_blocked_student_without_a_card_is_not_asked_to_add_one_to_buy(student_client, student, plan, staff_user):
    account_block(account=student, actor=staff_user, reason="Confirmed fraud")

    text = student_client.get(DASHBOARD).content.decode()

    assert PAUSED in text
    assert "Add a card to buy a package" not in text
    assert "data-card-form" not in text


def test_the_refreshed_button_fragments_say_so_too(localstripe, student_client, student, plan, staff_user):
    credit(student, 60, plan=plan)
    add_card(student, localstripe)
    account_block(account=student, actor=staff_user, reason="Confirmed fraud")

    for fragment, says in (("balance", PAUSED), ("lots", "Buying is paused"), ("plans", "Buying is paused")):
        response = student_client.get(DASHBOARD, headers={"HX-Request": "true", "HX-Target": fragment})
        text = response.content.decode()
        assert says in text, fragment
        assert 'name="token"' not in text, fragment


def test_a_pay_click_from_a_page_shown_before_the_block_is_refused_without_calling_stripe(
    localstripe, student_client, student, plan, staff_user, watch_stripe
):
    card = add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")
    account_block(account=student, actor=staff_user, reason="Confirmed fraud")
    stripe_calls = watch_stripe()

    response = student_client.post(PAY, {"token": token, "payment_method": card.pk}, headers=HTMX)

    assert response.status_code == 200
    assert PAUSED in response.content.decode()
    assert 'name="token"' not in response.content.decode()
    assert stripe_calls == []
    assert not Payment.objects.exists()
    assert localstripe.payment_intents() == []


def test_without_javascript_the_refusal_is_a_message_on_the_dashboard(
    localstripe, student_client, student, plan, staff_user, watch_stripe
):
    add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")
    account_block(account=student, actor=staff_user, reason="Confirmed fraud")
    stripe_calls = watch_stripe()

    response = student_client.post(PAY, {"token": token}, follow=True)

    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert PAUSED in [str(message) for message in response.context["messages"]]
    assert stripe_calls == []
    assert not Payment.objects.exists()


def test_an_unblocked_student_sees_the_buttons_and_can_buy_again(
    localstripe, student_client, student, plan, staff_user
):
    card = add_card(student, localstripe)
    account_block(account=student, actor=staff_user, reason="Confirmed fraud")
    account_unblock(account=student, actor=staff_user, reason="Bank confirmed the card holder")

    text = student_client.get(DASHBOARD).content.decode()
    token = payment_token_issue(account=student, plan=plan, kind="purchase")
    response = student_client.post(PAY, {"token": token, "payment_method": card.pk}, headers=HTMX)

    assert PAUSED not in text
    assert "Buy 10 h for €150.00 with Visa 4242" in text
    assert "Payment received." in response.content.decode()
    assert Payment.objects.get().status == "succeeded"


def test_the_3d_secure_check_of_a_payment_started_before_the_block_is_not_handed_out(
    localstripe, student_client, student, plan, staff_user
):
    card = add_card(student, localstripe, "4000002760003184")
    student_client.post(PAY, {"token": payment_token_issue(account=student, plan=plan, kind="purchase")}, headers=HTMX)
    waiting = Payment.objects.get(status="requires_action")
    account_block(account=student, actor=staff_user, reason="Confirmed fraud")  # its cancel still queued

    # What the "confirm your payment" alert's link (/?resume=<payment>) asks for on the dashboard.
    response = student_client.post(reverse("student:payment_refresh", args=[waiting.pk]), headers=HTMX)

    text = response.content.decode()
    assert response.status_code == 200
    assert PAUSED in text
    assert "data-client-secret" not in text and "_secret_" not in text
    assert card.stripe_payment_method_id not in text


def test_a_blocked_student_cannot_start_adding_a_card(localstripe, student_client, student, staff_user):
    account_block(account=student, actor=staff_user, reason="Confirmed fraud")

    response = student_client.post(reverse("student:card_setup"))

    assert response.status_code == 400
    assert response.json() == {"error": CARDS_PAUSED}
    assert "client_secret" not in response.json()
