"""The automatic top-up section of the account page: turned on, changed, paused, resumed and off,
in place under HTMX or as a whole page; bad settings come back with a clear message and nothing
saved or charged."""

import pytest

from billing import topups
from billing.models import AuditEntry, AutoTopUp, Payment
from billing.tests.builders import add_card, credit, make_plan, make_student

pytestmark = pytest.mark.django_db

URL = "/account/auto-top-up/"
HTMX = {"HTTP_HX_REQUEST": "true"}
STATE_URL = "/account/auto-top-up/state/"


@pytest.fixture
def account():
    return make_student()


@pytest.fixture
def plan():
    return make_plan("Ten hours", minutes=600, price_cents=15000)


@pytest.fixture
def card(account, localstripe):
    return add_card(account, localstripe)


@pytest.fixture
def signed_in(client, account):
    client.force_login(account.user)
    return client


def settings_post(plan, card, **changes):
    return {
        "level_hours": 2,
        "level_minutes": 0,
        "plan": plan.pk,
        "card": card.pk,
        "count_cap": 2,
        "amount_cap": "300.00",
    } | changes


def test_the_account_page_offers_it_off_by_default_with_the_default_card_and_featured_package(
    signed_in, account, plan, card
):
    page = signed_in.get("/account/").content.decode()
    assert 'id="auto-top-up"' in page and "Turn on automatic top-up" in page
    assert f'<option value="{card.pk}" selected>' in page
    assert not AutoTopUp.objects.exists()


def test_without_a_card_it_asks_for_one_first(signed_in, account, plan):
    page = signed_in.get("/account/").content.decode()
    assert "add a card" in page and "Turn on automatic top-up" not in page


def test_saving_turns_it_on_and_says_the_most_it_can_charge(signed_in, account, plan, card):
    credit(account, 600)
    response = signed_in.post(URL, settings_post(plan, card, amount_cap="400.00", count_cap=3), **HTMX)
    assert response.status_code == 200
    text = response.content.decode()
    assert "Automatic top-up is on: below 2 h it buys Ten hours" in text
    assert "At most 2 top-ups a month: the most it can charge in a calendar month is €300.00." in text
    setting = AutoTopUp.objects.get(account=account)
    assert (setting.status, setting.threshold_minutes, setting.monthly_amount_cap_cents) == ("active", 120, 40000)


def test_without_htmx_a_save_redirects_to_the_section_with_a_message(signed_in, account, plan, card):
    credit(account, 600)
    response = signed_in.post(URL, settings_post(plan, card))
    assert response.status_code == 302 and response.url.endswith("/account/#auto-top-up")
    assert "Automatic top-up is on" in signed_in.get(response.url).content.decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"count_cap": 0}, "Enter at least 1 top-up a month."),
        ({"amount_cap": "0"}, "Enter a monthly amount above zero."),
        ({"amount_cap": "100.00"}, "more than the monthly amount"),
        ({"level_hours": 0, "level_minutes": 0}, "Enter a level above zero."),
        ({"amount_cap": "lots"}, "Enter a number."),
        ({"count_cap": ""}, "This field is required."),
    ],
)
def test_bad_settings_come_back_with_a_clear_message_and_nothing_saved(signed_in, plan, card, changes, message):
    response = signed_in.post(URL, settings_post(plan, card, **changes), **HTMX)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AutoTopUp.objects.exists()


def test_a_package_not_for_sale_or_another_students_card_is_refused(signed_in, plan, card, localstripe):
    hidden = make_plan("Old", minutes=60, price_cents=2000, is_active=False)
    other_card = add_card(make_student(), localstripe)
    for changes, message in (
        ({"plan": hidden.pk}, "This package is not for sale"),
        ({"card": other_card.pk}, "not one of your saved cards"),
        ({"plan": "x"}, "This package is not for sale"),
    ):
        response = signed_in.post(URL, settings_post(plan, card) | changes, **HTMX)
        assert message in response.content.decode()
    assert not AutoTopUp.objects.exists()
    assert not Payment.objects.exists()


def test_pause_resume_and_turn_off(signed_in, account, plan, card):
    credit(account, 600)
    signed_in.post(URL, settings_post(plan, card), **HTMX)
    response = signed_in.post(STATE_URL, {"action": "pause"}, **HTMX)
    assert "paused until you resume it" in response.content.decode()
    assert AutoTopUp.objects.get().pause_reason == "student"
    assert "Automatic top-up is on again." in signed_in.post(STATE_URL, {"action": "resume"}, **HTMX).content.decode()
    signed_in.post(STATE_URL, {"action": "off"}, **HTMX)
    assert AutoTopUp.objects.get().status == "off"
    refused = signed_in.post(STATE_URL, {"action": "resume"}, **HTMX).content.decode()
    assert "Automatic top-up is not paused." in refused
    assert "Please reload the page" in signed_in.post(STATE_URL, {"action": "explode"}, **HTMX).content.decode()


def test_a_state_change_without_settings_is_a_message_not_an_error(signed_in):
    response = signed_in.post(STATE_URL, {"action": "pause"}, **HTMX)
    assert response.status_code == 200 and "not set up" in response.content.decode()


def turned_on(account, plan, card, **caps):
    return topups.auto_top_up_save(
        account=account,
        threshold_minutes=120,
        plan=plan,
        card=card,
        monthly_count_cap=caps.get("count", 2),
        monthly_amount_cap_cents=caps.get("cents", 30000),
        actor=account.user,
    )


class TestConsole:
    def test_the_student_page_shows_the_settings_and_their_history(self, support_client, account, plan, card):
        credit(account, 600)
        turned_on(account, plan, card)
        page = support_client.get(f"/console/students/{account.pk}/").content.decode()
        assert "Below 2 h, buy Ten hours with" in page and "Settings saved" in page
        assert "Pause automatic top-up" not in page  # Finance's action
        response = support_client.post(f"/console/students/{account.pk}/auto-top-up/pause/", {"reason": "x"})
        assert response.status_code == 403
        assert AutoTopUp.objects.get().status == "active"

    def test_finance_pauses_it_with_a_reason_and_it_is_audited(self, finance_client, account, plan, card):
        credit(account, 600)
        turned_on(account, plan, card)
        url = f"/console/students/{account.pk}/auto-top-up/pause/"
        assert "This field is required." in finance_client.post(url, {"reason": ""}, **HTMX).content.decode()
        assert AutoTopUp.objects.get().status == "active"
        response = finance_client.post(url, {"reason": "Card reported stolen"})
        assert response.status_code == 302
        setting = AutoTopUp.objects.get()
        assert (setting.pause_reason, setting.pause_detail) == ("staff", "Card reported stolen")
        assert AuditEntry.objects.get(action="auto_top_up.pause").account_id == account.pk
        page = finance_client.get(f"/console/students/{account.pk}/").content.decode()
        assert "Resume automatic top-up" in page and "Card reported stolen" in page
        assert finance_client.get("/console/students/999999/auto-top-up/pause/").status_code == 404


def test_the_low_balance_banner_leads_to_it(signed_in, account):
    credit(account, 30)
    page = signed_in.get("/").content.decode()
    assert 'href="/account/#auto-top-up"' in page and "set up automatic top-up" in page
