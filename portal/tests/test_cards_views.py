"""The cards page and its endpoints: card data never touches us; other students' cards are not found."""

import pytest
from django.urls import reverse

from billing import cards
from billing.models import PaymentMethod
from billing.tests.builders import add_card, make_student

HTMX = {"HX-Request": "true", "HX-Target": "card-list"}


def test_it_lists_cards_with_default_and_expiry_marks(localstripe, student_client, student):
    add_card(student, localstripe, "4242424242424242", exp_month=12, exp_year=2034)
    add_card(student, localstripe, "4000002760003184", exp_month=1, exp_year=2020)

    text = student_client.get(reverse("student:cards")).content.decode()

    assert "Visa 4242" in text and "Default" in text
    assert "Visa 3184" in text and "Expired" in text
    assert 'aria-label="Make default: Visa 3184"' in text
    assert 'aria-label="Remove Visa 4242"' in text
    assert "data-card-form" in text


def test_setup_returns_only_a_client_secret(localstripe, student_client, student):
    response = student_client.post(reverse("student:card_setup"))

    assert response.status_code == 200
    assert set(response.json()) == {"client_secret"}
    assert response.json()["client_secret"].startswith("seti_")


def test_saving_a_confirmed_setup_stores_the_card(localstripe, student_client, student):
    secret = student_client.post(reverse("student:card_setup")).json()["client_secret"]
    setup_intent = cards.stripe_gateway.setup_intent_retrieve(secret.split("_secret_")[0])
    localstripe.browser_confirm_setup(setup_intent, "4242424242424242")

    response = student_client.post(reverse("student:card_save"), {"setup_intent": setup_intent.id})

    assert response.json() == {"card": "Visa 4242", "default": True}
    assert PaymentMethod.objects.get(account=student).last4 == "4242"


@pytest.mark.parametrize("setup_intent", ["", "not-a-setup-intent", "seti_doesNotExist"])
def test_saving_a_bad_setup_is_a_clear_error(localstripe, student_client, student, setup_intent):
    response = student_client.post(reverse("student:card_save"), {"setup_intent": setup_intent})

    assert response.status_code == 400
    assert response.json()["error"]
    assert not PaymentMethod.objects.exists()


def test_saving_when_stripe_is_unreachable_is_a_clear_error(localstripe, settings, student_client, student):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    response = student_client.post(reverse("student:card_setup"))

    assert response.status_code == 503
    assert response.json() == {"error": "We could not reach the payment provider. Please try again."}


def test_removing_the_default_card_names_the_new_default(localstripe, student_client, student):
    first = add_card(student, localstripe)
    add_card(student, localstripe, "4000002760003184")

    response = student_client.post(reverse("student:card_remove", args=[first.pk]), headers=HTMX)

    text = response.content.decode()
    assert "Visa 4242 was removed. Visa 3184 is now your default card." in text
    assert text.lstrip().startswith('<div id="card-list"')


def test_making_a_card_default_without_javascript_redirects_with_a_message(localstripe, student_client, student):
    add_card(student, localstripe)
    second = add_card(student, localstripe, "4000002760003184")

    response = student_client.post(reverse("student:card_make_default", args=[second.pk]))

    assert response.status_code == 302
    page = student_client.get(response["Location"]).content.decode()
    assert "Visa 3184 is now your default card." in page


@pytest.mark.parametrize("action", ["student:card_remove", "student:card_make_default"])
def test_another_students_card_is_not_found(localstripe, student_client, action):
    foreign = add_card(make_student(), localstripe)

    response = student_client.post(reverse(action, args=[foreign.pk]))

    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.removed_at is None


def test_card_endpoints_refuse_get(student_client):
    for name in ("student:card_setup", "student:card_save"):
        assert student_client.get(reverse(name)).status_code == 405
