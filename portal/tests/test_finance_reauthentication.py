"""Money and hours move only on a recent second factor: a Finance action asks for a fresh TOTP code
(allauth's reauthentication step) when the last one is older than CONSOLE_FINANCE_REAUTH_MINUTES,
then brings the staff member back to where they were. Support's own actions never ask."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse

from billing.models import Account, WebhookEvent
from billing.tests.builders import make_student, totp_code
from portal.tests.htmx import client_redirect

pytestmark = pytest.mark.django_db

STALE = timedelta(minutes=16)


@pytest.fixture
def account():
    return make_student("bea@example.com")


def block(client, account, **extra):
    return client.post(
        reverse("console:student_block", args=[account.pk]),
        {"reason": "Chargebacks on three cards."},
        HTTP_REFERER=f"http://testserver{reverse('console:student', args=[account.pk])}?tab=ledger",
        **extra,
    )


def test_a_code_given_just_now_lets_finance_act(finance_client, account):
    assert block(finance_client, account).status_code == 302
    account.refresh_from_db()
    assert account.blocked_at is not None


def test_an_old_code_asks_for_a_fresh_one_and_changes_nothing(finance_client, account):
    with time_machine.travel(STALE):
        response = block(finance_client, account)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_reauthenticate"))
    account.refresh_from_db()
    assert account.blocked_at is None


def test_after_the_fresh_code_the_staff_member_is_back_on_the_page_of_the_form(finance_client, account):
    with time_machine.travel(STALE):
        asked = block(finance_client, account)
        answered = finance_client.post(asked["Location"], {"code": totp_code()})
        assert answered.status_code == 302
        assert answered["Location"] == f"{reverse('console:student', args=[account.pk])}?tab=ledger"
        assert block(finance_client, account).status_code == 302
    account.refresh_from_db()
    assert account.blocked_at is not None


def test_a_finance_page_asks_first_and_comes_back_to_itself(finance_client, account):
    url = reverse("console:student_block", args=[account.pk])
    with time_machine.travel(STALE):
        asked = finance_client.get(url)
        assert asked["Location"].startswith(reverse("mfa_reauthenticate"))
        answered = finance_client.post(asked["Location"], {"code": totp_code()})
    assert answered["Location"] == url


def test_an_htmx_action_loads_the_code_page_whole(finance_client, account):
    with time_machine.travel(STALE):
        response = block(finance_client, account, HTTP_HX_REQUEST="true")
    assert client_redirect(response).startswith(reverse("mfa_reauthenticate"))


def test_a_wrong_fresh_code_changes_nothing(finance_client, account):
    with time_machine.travel(STALE):
        asked = block(finance_client, account)
        answered = finance_client.post(asked["Location"], {"code": "000000"})
        assert answered.status_code == 200  # the form again, with its error
        assert block(finance_client, account)["Location"].startswith(reverse("mfa_reauthenticate"))
    assert Account.objects.get(pk=account.pk).blocked_at is None


def test_a_referer_from_elsewhere_is_not_followed_back(finance_client, account):
    with time_machine.travel(STALE):
        response = finance_client.post(
            reverse("console:student_block", args=[account.pk]),
            {"reason": "x"},
            HTTP_REFERER="https://evil.example.com/phish",
        )
    assert "evil.example.com" not in response["Location"]
    assert "next=%2Fconsole%2F" in response["Location"]


def test_the_window_is_a_setting(finance_client, account, settings):
    settings.CONSOLE_FINANCE_REAUTH_MINUTES = 60
    with time_machine.travel(STALE):
        assert block(finance_client, account)["Location"] == reverse("console:student", args=[account.pk])


def test_support_actions_never_ask_for_a_fresh_code(support_client):
    event = WebhookEvent.objects.create(
        stripe_event_id="evt_old", type="customer.updated", payload={}, status=WebhookEvent.Status.FAILED
    )
    with time_machine.travel(timedelta(days=3)):
        response = support_client.post(reverse("console:webhook_retry", args=[event.pk]))
    assert not response.get("Location", "").startswith(reverse("mfa_reauthenticate"))


def test_staff_are_asked_for_a_code_and_not_offered_a_password_that_would_not_do(finance_client, account):
    with time_machine.travel(STALE):
        asked = block(finance_client, account)
        page = finance_client.get(asked["Location"]).content.decode()
    assert "need a recent code from your authenticator app" in page
    assert reverse("account_reauthenticate") not in page


def test_a_referer_on_our_host_that_reads_as_another_host_is_not_followed(finance_client, account):
    with time_machine.travel(STALE):
        response = finance_client.post(
            reverse("console:student_block", args=[account.pk]),
            {"reason": "x"},
            HTTP_REFERER="http://testserver//evil.example.com/phish",
        )
    assert "evil.example.com" not in response["Location"]
