"""The pay button's endpoint: one POST, an HTMX fragment in place, never a 500, never a double charge."""

import re
from urllib.parse import parse_qs

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import Lot, Payment
from billing.payments import PAYMENT_RESOLVED, PAYMENT_UNDER_REVIEW, payment_start, payment_token_issue
from billing.tests.builders import add_card, credit, make_plan, make_student
from billing.tests.network import LossyProxy, charge_answers_lost
from conftest import console_sign_in
from portal.tests.htmx import client_events

PAY = reverse("student:pay")
HTMX = {"HX-Request": "true", "HX-Target": "payment-result"}


@pytest.fixture
def plan(db):
    return make_plan("Standard", minutes=600, price_cents=15000, validity_days=90)


def pay(client, token, card=None, htmx=True):
    data = {"token": token}
    if card:
        data["payment_method"] = card.pk
    return client.post(PAY, data, headers=HTMX if htmx else {})


def test_a_renewal_click_credits_hours_and_tells_the_page_to_refresh(localstripe, student_client, student, plan):
    lot = credit(student, 60, name="Standard")
    card = add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="renewal", renewed_lot=lot)

    response = pay(student_client, token, card)

    text = response.content.decode()
    assert response.status_code == 200
    assert client_events(response) == {"balanceChanged"}
    assert "Payment received." in text
    assert "10 h added (Standard, €150.00). Your balance is now 11 h." in text
    assert Payment.objects.get().renewed_lot == lot


def test_the_dashboard_buttons_say_what_will_happen(localstripe, student_client, student, plan):
    credit(student, 60, plan=plan)
    add_card(student, localstripe)

    text = student_client.get(reverse("student:dashboard")).content.decode()

    assert "Renew 10 h for €150.00 with Visa 4242" in text
    assert "Top up 10 h for €150.00 with Visa 4242" in text
    assert "Buy 10 h for €150.00 with Visa 4242" in text
    tokens = re.findall(r'name="token" value="([^"]+)"', text)
    assert len(tokens) == len(set(tokens)) == 3  # one fresh one-time token per button


def test_without_a_card_the_dashboard_offers_the_card_form_instead(student_client, student, plan):
    text = student_client.get(reverse("student:dashboard")).content.decode()

    assert "Add a card to buy a package" in text
    assert "data-card-form" in text
    assert 'name="token"' not in text


def test_a_declined_card_says_why_and_offers_every_card_the_declined_one_last(
    localstripe, student_client, student, plan
):
    declining = add_card(student, localstripe, "4000000000000341")
    add_card(student, localstripe, "4242424242424242")
    token = payment_token_issue(account=student, plan=plan, kind="purchase")

    text = pay(student_client, token, declining).content.decode()

    assert "Payment failed." in text
    assert "Your card was declined by your bank." in text
    offers = text.split("Try again with:")[1]
    assert offers.index("Buy 10 h for €150.00 with Visa 4242") < offers.index("with Visa 0341")
    assert not Lot.objects.exists()


def test_a_3d_secure_card_hands_the_client_secret_to_stripe_js(localstripe, student_client, student, plan):
    card = add_card(student, localstripe, "4000002760003184")
    token = payment_token_issue(account=student, plan=plan, kind="purchase")

    text = pay(student_client, token, card).content.decode()

    payment = Payment.objects.get()
    assert payment.status == "requires_action"
    assert f'data-client-secret="{payment.stripe_payment_intent_id}_secret_' in text
    assert f'data-payment-method="{card.stripe_payment_method_id}"' in text
    assert reverse("student:payment_refresh", args=[payment.pk]) in text


def test_the_same_click_posted_twice_shows_the_same_payment(localstripe, student_client, student, plan):
    card = add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")

    first = pay(student_client, token, card)
    second = pay(student_client, token, card)

    assert "Payment received." in first.content.decode()
    assert "Payment received." in second.content.decode()
    assert Payment.objects.count() == Lot.objects.count() == 1
    assert len(localstripe.payment_intents()) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "This payment button is not valid"),
        ({"token": "made-up"}, "This payment button is not valid"),
        ({"token": "x", "payment_method": "abc"}, "This payment button is not valid"),
    ],
)
def test_bad_input_is_a_message_not_an_error(localstripe, student_client, student, data, message):
    response = student_client.post(PAY, data, headers=HTMX)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Payment.objects.exists()


def test_someone_elses_card_is_refused(localstripe, student_client, student, plan):
    add_card(student, localstripe)
    foreign = add_card(make_student(), localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")

    text = pay(student_client, token, foreign).content.decode()

    assert "That card is not one of your saved cards." in text
    assert not Payment.objects.exists()


def test_without_htmx_the_outcome_is_a_message_on_the_dashboard(localstripe, student_client, student, plan):
    card = add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")

    response = pay(student_client, token, card, htmx=False)

    assert response.status_code == 302
    assert response["Location"] == reverse("student:dashboard")
    assert "Standard added to your hours." in student_client.get(response["Location"]).content.decode()


def test_refreshing_someone_elses_payment_is_not_found(localstripe, client, student, plan):
    add_card(student, localstripe)
    payment = payment_start(account=student, token=payment_token_issue(account=student, plan=plan, kind="purchase"))
    other = make_student()
    client.force_login(other.user)

    assert client.post(reverse("student:payment_refresh", args=[payment.pk]), headers=HTMX).status_code == 404


def test_pay_refuses_get(student_client):
    assert student_client.get(PAY).status_code == 405


def test_pay_sends_anonymous_visitors_to_sign_in(client, db):
    response = client.post(PAY, {"token": "x"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_stripe_unreachable_is_a_checking_message_never_an_error(localstripe, settings, student_client, student, plan):
    card = add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    response = pay(student_client, token, card)

    text = response.content.decode()
    assert response.status_code == 200
    assert "We are checking your payment." in text
    payment = Payment.objects.get()
    assert f"/payments/{payment.pk}/refresh/?attempt=0" in text
    assert client_events(response) == set()  # nothing changed yet: the page refreshes nothing


def test_the_checking_message_stops_asking_after_a_while(localstripe, settings, student_client, student, plan):
    card = add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    pay(student_client, token, card)
    refresh = reverse("student:payment_refresh", args=[Payment.objects.get().pk])

    early = student_client.post(f"{refresh}?attempt=3", headers=HTMX).content.decode()
    late = student_client.post(f"{refresh}?attempt=14", headers=HTMX).content.decode()

    assert "?attempt=4" in early and 'hx-trigger="load delay:4s"' in early
    assert "You can leave this page" in late and "hx-trigger" not in late


def test_a_replayed_click_says_nothing_new_was_charged(localstripe, student_client, student, plan):
    card = add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")
    pay(student_client, token, card)

    text = pay(student_client, token, card).content.decode()

    assert "You already used this button; nothing new was charged." in text
    assert Payment.objects.count() == 1


def test_another_payment_in_flight_is_a_clear_message(localstripe, settings, student_client, student, plan):
    card = add_card(student, localstripe)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    pay(student_client, payment_token_issue(account=student, plan=plan, kind="purchase"), card)

    text = pay(student_client, payment_token_issue(account=student, plan=plan, kind="top_up"), card).content.decode()

    assert "Another payment for your account is being processed. Please wait a moment." in text
    assert Payment.objects.count() == 1


def test_a_payment_in_flight_that_cannot_be_settled_is_a_clear_message_not_an_error(
    localstripe, settings, student_client, student, plan
):
    card = add_card(student, localstripe)
    with charge_answers_lost(localstripe, settings):
        stuck = payment_start(account=student, token=payment_token_issue(account=student, plan=plan, kind="purchase"))
    # Stripe lists its intent in a shape we cannot read (here: without its amount).
    unreadable = {"id": "pi_unreadable", "object": "payment_intent", "metadata": {"payment_id": str(stuck.pk)}}
    listing = {"object": "list", "url": "/v1/payment_intents", "has_more": False, "data": [unreadable]}
    proxy = LossyProxy(localstripe.url, canned={r"^GET /v1/payment_intents\?": (200, listing)})
    settings.STRIPE_API_BASE = proxy.url
    try:
        response = pay(student_client, payment_token_issue(account=student, plan=plan, kind="top_up"), card)
    finally:
        proxy.close()

    assert response.status_code == 200
    assert "Another payment for your account is being processed. Please wait a moment." in response.content.decode()
    assert Payment.objects.count() == 1


def test_refreshing_a_payment_whose_answer_cannot_be_read_is_a_checking_message_not_an_error(
    localstripe, settings, student_client, student, plan
):
    add_card(student, localstripe)
    with charge_answers_lost(localstripe, settings):
        stuck = payment_start(account=student, token=payment_token_issue(account=student, plan=plan, kind="purchase"))
    unreadable = {"id": "pi_unreadable", "object": "payment_intent", "metadata": {"payment_id": str(stuck.pk)}}
    listing = {"object": "list", "url": "/v1/payment_intents", "has_more": False, "data": [unreadable]}
    proxy = LossyProxy(localstripe.url, canned={r"^GET /v1/payment_intents\?": (200, listing)})
    settings.STRIPE_API_BASE = proxy.url
    try:
        response = student_client.post(reverse("student:payment_refresh", args=[stuck.pk]), headers=HTMX)
    finally:
        proxy.close()

    assert response.status_code == 200
    assert "We are checking your payment." in response.content.decode()
    assert Payment.objects.get().status == Payment.Status.PROCESSING


def test_a_click_handed_another_payment_waiting_for_3d_secure_names_that_payment(
    localstripe, settings, student_client, student, plan
):
    card = add_card(student, localstripe, "4000002760003184")
    pay(student_client, payment_token_issue(account=student, plan=plan, kind="purchase"), card)
    small = make_plan("Small", minutes=120, price_cents=3500)
    # Stripe does not answer the cancel of the waiting payment, so the click cannot replace it.
    proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents/\w+/cancel$": (500, {})})
    settings.STRIPE_API_BASE = proxy.url
    try:
        response = pay(student_client, payment_token_issue(account=student, plan=small, kind="top_up"), card)
    finally:
        proxy.close()

    text = response.content.decode()
    assert "You have a payment of €150.00 for Standard waiting for your bank's check" in text
    assert "Your bank asks you to confirm this payment." not in text
    assert "data-client-secret" in text  # the student may complete that one
    assert Payment.objects.count() == 1


def test_stripe_charging_another_amount_is_a_plain_message_and_a_payment_for_staff(
    localstripe, settings, student_client, student, plan, support_user
):
    card = add_card(student, localstripe)

    def charged_less(request_body):
        sent = {key: values[-1] for key, values in parse_qs(request_body.decode()).items()}
        return 200, localstripe.post("/v1/payment_intents", **(sent | {"amount": "1500"}))

    proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": charged_less})
    settings.STRIPE_API_BASE = proxy.url
    try:
        response = pay(student_client, payment_token_issue(account=student, plan=plan, kind="purchase"), card)
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url

    text = response.content.decode()
    payment = Payment.objects.get()
    assert response.status_code == 200
    assert PAYMENT_UNDER_REVIEW in text
    assert "pi_" not in text and payment.stripe_payment_intent_id not in text
    assert not Lot.objects.exists()
    support_client = console_sign_in(Client(), support_user)
    listed = support_client.get(reverse("console:payments"), {"status": "needs_review"}).content.decode()
    assert reverse("console:payment", args=[payment.pk]) in listed
    page = support_client.get(reverse("console:payment", args=[payment.pk])).content.decode()
    assert "Needs staff review" in page
    assert "Stripe charged €15.00 instead of €150.00." in page
    overview = support_client.get(reverse("console:index")).content.decode()
    assert f"{reverse('console:payments')}?status=needs_review" in overview


def resolved_by_staff(payment):
    """What a payment left for review (Stripe charged another amount) is once Finance resolved it."""
    Payment.objects.filter(pk=payment.pk).update(
        status=Payment.Status.RESOLVED,
        lot=None,
        stripe_amount_cents=1500,
        stripe_currency="EUR",
        failure_code=Payment.Failure.AMOUNT_MISMATCH,
        failure_message="Stripe charged €15.00 instead of €150.00. No hours were added.",
    )


def test_a_reused_button_of_a_payment_staff_resolved_says_so_and_stops_checking(
    localstripe, student_client, student, plan
):
    card = add_card(student, localstripe)
    token = payment_token_issue(account=student, plan=plan, kind="purchase")
    pay(student_client, token, card)
    resolved_by_staff(Payment.objects.get())

    text = pay(student_client, token, card).content.decode()

    assert PAYMENT_RESOLVED in text
    assert "We are checking your payment" not in text and "hx-trigger" not in text
    assert "pi_" not in text and "15.00" not in text


def test_without_htmx_a_payment_staff_resolved_is_a_plain_message(localstripe, student_client, student, plan):
    card = add_card(student, localstripe)
    pay(student_client, payment_token_issue(account=student, plan=plan, kind="purchase"), card)
    payment = Payment.objects.get()
    resolved_by_staff(payment)

    response = student_client.post(reverse("student:payment_refresh", args=[payment.pk]))

    assert response.status_code == 302
    dashboard = student_client.get(response["Location"]).content.decode()
    assert PAYMENT_RESOLVED in dashboard
    assert "We are checking your payment" not in dashboard
