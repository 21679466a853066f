"""Who may open the console: staff of the Support or Finance group, signed in with a TOTP code.
Anyone else is sent to sign in (anonymous) or told the page does not exist (404); Support is
refused (403) whatever only Finance may do. Every console route is checked, read from the URL
resolver: a route added tomorrow is checked too."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from billing.models import Account, AuditEntry, Refund
from billing.tests.builders import make_console_user, make_paid_payment, make_staff, make_student
from conftest import console_sign_in
from portal.tests.routes import ids_of_every_kind, request, routes

pytestmark = pytest.mark.django_db

CONSOLE = routes("console")
URL = reverse("console:index")


@pytest.fixture
def ids(localstripe):
    return ids_of_every_kind(make_paid_payment(localstripe, account=make_student("payer@example.com")))


# What the Support level may do (portal.console.access): read, retry webhooks, resend receipts,
# clear and note flags, record sessions and void them within a day, set a student's reminder level,
# download a student's data.
SUPPORT_ACTIONS = {
    "webhook_event.retry",
    "webhook_event.retry_all",
    "receipt.resend",
    "fraud_flag.clear",
    "fraud_flag.note",
    "session.record",
    "session.void",
    "account.low_balance",
    "privacy.export",
}


def every_form_filled_in(ids):
    """A POST that any console action's form would take as valid, confirmations included: what a
    guard must stop, not the form."""
    return {
        "reason": "Because.",
        "note": "A note.",
        "amount": "1.00",
        "hours": "0.5",
        "lot": ids["lot_id"],
        "block": "on",
        "refund": "on",
        "confirm": "1",
        "key": "access-sweep",
        "occurred_at": (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "duration": "0.5",
        "tutor": "Dr. Maria Keller",
        "subject": "Mathematics",
        "to": "",
        "product_description": "Evidence text.",
        "submit": "1",
    }


def finance_only_methods(route):
    """The methods of a route that only Finance may use, as its guard declares them."""
    finance = route.view.console_finance
    return {"GET", "POST"} if finance is True else set(finance or ())


def test_the_walk_finds_the_console_and_its_finance_actions():
    assert len(CONSOLE) >= 25
    assert any(finance_only_methods(route) for route in CONSOLE)


@pytest.mark.parametrize("route", CONSOLE, ids=lambda route: route.name)
def test_every_console_route_is_behind_the_console_guard(route):
    assert hasattr(route.view, "console_finance"), f"{route.name} is not wrapped by console_view"
    assert route.view.varies_on_htmx


def test_anonymous_visitors_are_asked_to_sign_in_everywhere(client, ids):
    for route in CONSOLE:
        for method in ("GET", "POST"):
            response = request(client, route, ids, method)
            assert response.status_code == 302, f"{method} {route.name}"
            assert response["Location"].startswith(reverse("account_login")), f"{method} {route.name}"


def test_the_console_does_not_exist_for_students(student_client, ids):
    for route in CONSOLE:
        for method in ("GET", "POST"):
            assert request(student_client, route, ids, method).status_code == 404, f"{method} {route.name}"


def test_support_is_refused_every_finance_action_and_may_do_the_rest(client, support_user, ids):
    console_sign_in(client, support_user)
    for route in CONSOLE:
        refused = finance_only_methods(route)
        for method in ("GET", "POST"):
            response = request(client, route, ids, method, data=every_form_filled_in(ids))
            if method in refused:
                assert response.status_code == 403, f"{method} {route.name}"
            else:
                assert response.status_code in (200, 302, 405), f"{method} {route.name}"
    # Whatever the routes' guards say, Support's sweep moved no money, hours or blocks: every
    # console action is audited, and only Support's own are in the log.
    assert set(AuditEntry.objects.values_list("action", flat=True)) <= SUPPORT_ACTIONS
    assert Refund.objects.count() == 1 and not Account.objects.filter(blocked_at__isnull=False).exists()


def test_finance_passes_the_guard_of_every_finance_action(client, finance_user, ids):
    console_sign_in(client, finance_user)
    checked = 0
    for route in CONSOLE:
        for method in sorted(finance_only_methods(route)):
            response = request(client, route, ids, method, data=every_form_filled_in(ids))
            assert response.status_code in (200, 302, 405), f"{method} {route.name}"
            checked += response.status_code != 405
    assert checked >= 10


def test_staff_without_a_console_role_get_404(client):
    client.force_login(make_staff("intern@example.com"))
    assert client.get(URL).status_code == 404


def test_staff_without_two_factor_are_asked_to_set_it_up(client):
    user = make_staff("new.hire@example.com")
    user.groups.add(Group.objects.get(name="Support"))
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")


def test_a_session_signed_in_without_the_code_must_give_it_first(client):
    client.force_login(make_console_user("no.code@example.com", role="Support"))  # no TOTP step
    response = client.get(reverse("console:payments"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_reauthenticate"))
    assert "next=%2Fconsole%2Fpayments%2F" in response["Location"]


def test_signing_in_with_password_and_code_opens_the_console(support_client):
    response = support_client.get(URL)
    assert response.status_code == 200
    assert "Overview" in response.content.decode()


def test_the_groups_carry_the_two_levels():
    support = set(Group.objects.get(name="Support").permissions.values_list("codename", flat=True))
    finance = set(Group.objects.get(name="Finance").permissions.values_list("codename", flat=True))
    assert support == {"console_support"}
    assert finance == {"console_support", "console_finance"}


def test_the_admin_signs_in_through_allauth(client):
    response = client.get(reverse("admin:index"), follow=True)
    final_url, _ = response.redirect_chain[-1]
    assert final_url.startswith(reverse("account_login"))
    assert "auth-card" in response.content.decode()


def test_the_admin_is_closed_to_students(student_client):
    assert student_client.get(reverse("admin:index")).status_code in (302, 403)
    assert student_client.get(reverse("admin:login")).status_code == 403


def test_every_finance_action_needs_a_code_given_in_the_last_15_minutes(client, finance_user, ids):
    console_sign_in(client, finance_user)
    refunds_before = Refund.objects.count()
    checked = 0
    with time_machine.travel(timedelta(minutes=16)):
        for route in CONSOLE:
            for method in sorted(finance_only_methods(route)):
                response = request(client, route, ids, method, data=every_form_filled_in(ids))
                if response.status_code == 405:
                    continue
                assert response.status_code == 302, f"{method} {route.name}"
                assert response["Location"].startswith(reverse("mfa_reauthenticate")), f"{method} {route.name}"
                checked += 1
    assert checked >= 10
    # The stale session moved nothing: no audited action, no refund, no block.
    assert not AuditEntry.objects.exists()
    assert Refund.objects.count() == refunds_before
    assert not Account.objects.filter(blocked_at__isnull=False).exists()
