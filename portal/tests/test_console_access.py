"""Who may open the console: staff of the Support or Finance group, signed in with a TOTP code.
Anyone else is sent to sign in (anonymous) or told the page does not exist (404)."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from billing.tests.builders import make_console_user, make_staff

pytestmark = pytest.mark.django_db

READ_PAGES = ["index", "payments", "refunds", "disputes", "flags", "webhooks", "students", "audit"]
URL = reverse("console:index")


@pytest.mark.parametrize("name", READ_PAGES)
def test_anonymous_visitors_are_asked_to_sign_in(client, name):
    response = client.get(reverse(f"console:{name}"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("name", READ_PAGES)
def test_the_console_does_not_exist_for_students(student_client, name):
    assert student_client.get(reverse(f"console:{name}")).status_code == 404


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
