"""Sign-in with allauth: email + password, mandatory email verification, logout, password reset."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import Account
from billing.tests.builders import verified_user
from portal.models import User

pytestmark = pytest.mark.django_db


def test_signup_requires_verifying_the_email_before_signing_in(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "New.Student@Example.com", "password1": "a-long-pass-phrase-7", "password2": "a-long-pass-phrase-7"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert client.get(reverse("student:dashboard")).status_code == 302  # not signed in yet
    [message] = mail.outbox
    assert message.to == ["new.student@example.com"]
    confirm_url = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", message.body).group(1)

    confirmed = client.post(confirm_url)

    assert confirmed.status_code == 302
    dashboard = client.get(reverse("student:dashboard"))
    assert dashboard.status_code == 200
    assert "You have no tutoring hours yet" in dashboard.content.decode()
    assert Account.objects.filter(user__email="new.student@example.com").exists()


def test_signing_in_with_an_unverified_email_is_held_back(client, password):
    User.objects.create_user("unverified@example.com", password)

    response = client.post(reverse("account_login"), {"login": "unverified@example.com", "password": password})

    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert client.get(reverse("student:dashboard")).status_code == 302


def test_signing_in_with_email_and_password_opens_the_dashboard(client, password):
    verified_user("ana@example.com", password)

    response = client.post(reverse("account_login"), {"login": "ana@example.com", "password": password})

    assert response.status_code == 302
    assert response["Location"] == reverse("student:dashboard")
    assert client.get(reverse("student:dashboard")).status_code == 200


def test_a_wrong_password_is_a_clear_message_not_an_error(client, password):
    verified_user("ana@example.com", password)

    response = client.post(reverse("account_login"), {"login": "ana@example.com", "password": "nope"})

    assert response.status_code == 200
    assert "The email address and/or password you specified are not correct." in response.content.decode()


def test_signing_out_ends_the_session(student_client):
    response = student_client.post(reverse("account_logout"))

    assert response.status_code == 302
    assert student_client.get(reverse("student:dashboard")).status_code == 302


def test_a_password_reset_sends_a_link(client, password):
    verified_user("ana@example.com", password)

    response = client.post(reverse("account_reset_password"), {"email": "ana@example.com"})

    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["ana@example.com"]
    assert "/accounts/password/reset/key/" in message.body


def test_the_sign_in_page_uses_the_portal_layout(client):
    text = client.get(reverse("account_login")).content.decode()
    assert "Tutoring Hours" in text
    assert 'class="auth-card"' in text
    assert "portal.css" in text
