"""Saved cards against a real localstripe: card data goes browser -> Stripe; we keep ids and labels."""

import pytest

from billing import cards
from billing.cards import CardSetupFailed
from billing.fraud.blocks import account_block
from billing.models import PaymentMethod
from billing.tests.builders import add_card, make_student

pytestmark = pytest.mark.django_db


def stripe_default(localstripe, account):
    return localstripe.get(f"/v1/customers/{account.stripe_customer_id}")["invoice_settings"]["default_payment_method"]


def test_a_first_card_is_saved_with_only_its_label_and_becomes_the_default(localstripe):
    account = make_student()

    card = add_card(account, localstripe, "4242424242424242", exp_month=7, exp_year=2031)

    assert (card.brand, card.last4, card.exp_month, card.exp_year, card.is_default) == ("visa", "4242", 7, 2031, True)
    assert card.label == "Visa 4242"
    assert card.stripe_payment_method_id.startswith("pm_")
    stripe_card = localstripe.get(f"/v1/payment_methods/{card.stripe_payment_method_id}")
    assert stripe_card["customer"] == account.stripe_customer_id  # attached explicitly: the stand-in does not
    assert stripe_default(localstripe, account) == card.stripe_payment_method_id


def test_a_second_card_is_not_the_default_until_chosen(localstripe):
    account = make_student()
    first = add_card(account, localstripe)
    second = add_card(account, localstripe, "4000002760003184")

    assert not second.is_default
    cards.card_make_default(card=second)

    first.refresh_from_db()
    assert not first.is_default
    assert PaymentMethod.objects.get(is_default=True) == second
    assert stripe_default(localstripe, account) == second.stripe_payment_method_id


def test_saving_the_same_setup_twice_keeps_one_card(localstripe):
    account = make_student()
    setup_intent = cards.card_setup_start(account=account)
    localstripe.browser_confirm_setup(setup_intent, "4242424242424242")

    cards.card_save(account=account, setup_intent_id=setup_intent.id)
    cards.card_save(account=account, setup_intent_id=setup_intent.id)

    assert PaymentMethod.objects.filter(account=account).count() == 1


def test_a_declined_card_is_never_saved(localstripe):
    account = make_student()
    setup_intent = cards.card_setup_start(account=account)

    answer = localstripe.browser_confirm_setup(setup_intent, "4000000000000002")

    assert answer["error"]["code"] == "card_declined"  # what Stripe.js shows in the form
    with pytest.raises(CardSetupFailed, match="not confirmed"):
        cards.card_save(account=account, setup_intent_id=setup_intent.id)
    assert not PaymentMethod.objects.exists()


def test_another_students_card_setup_cannot_be_saved(localstripe):
    owner = make_student()
    thief = make_student()
    setup_intent = cards.card_setup_start(account=owner)
    localstripe.browser_confirm_setup(setup_intent, "4242424242424242")

    with pytest.raises(CardSetupFailed):
        cards.card_save(account=thief, setup_intent_id=setup_intent.id)
    assert not PaymentMethod.objects.exists()


def test_removing_the_default_promotes_the_newest_other_card(localstripe):
    account = make_student()
    oldest = add_card(account, localstripe)
    newest = add_card(account, localstripe, "4000002760003184")

    successor = cards.card_remove(card=oldest)

    assert successor == newest
    oldest.refresh_from_db()
    assert oldest.removed_at is not None and not oldest.is_default
    assert list(account.payment_methods.active()) == [newest]
    assert PaymentMethod.objects.get(pk=newest.pk).is_default
    assert localstripe.get(f"/v1/payment_methods/{oldest.stripe_payment_method_id}")["customer"] is None
    assert stripe_default(localstripe, account) == newest.stripe_payment_method_id


def test_removing_the_last_card_leaves_none(localstripe):
    account = make_student()
    only = add_card(account, localstripe)

    assert cards.card_remove(card=only) is None
    assert not account.payment_methods.active().exists()


def test_a_customer_stripe_forgot_is_replaced_and_its_cards_put_aside(localstripe):
    account = make_student()
    old_card = add_card(account, localstripe)
    old_customer = account.stripe_customer_id
    localstripe.reset()  # Stripe no longer knows the customer or its cards

    new_card = add_card(account, localstripe)

    account.refresh_from_db()
    assert account.stripe_customer_id not in ("", old_customer)
    old_card.refresh_from_db()
    assert old_card.removed_at is not None
    assert list(account.payment_methods.active()) == [new_card]
    assert new_card.is_default


def test_a_blocked_account_gets_no_card_setup_to_confirm(localstripe, staff_user):
    account = make_student()
    account_block(account=account, actor=staff_user, reason="Confirmed card testing")

    with pytest.raises(CardSetupFailed, match="Adding cards is paused on your account"):
        cards.card_setup_start(account=account)

    assert localstripe.get("/v1/setup_intents")["data"] == []
