"""The bell, the banner, the inbox and the email settings."""

import re

import pytest
from django.urls import reverse

from alerts.models import EmailOptOut, Notification
from billing.tests.builders import make_paid_payment, make_student
from portal.tests.htmx import client_events, client_redirect


def alert(account, kind="low_balance", key=None, title="Only 1 h left"):
    return Notification.objects.create(
        recipient=account.user, kind=kind, title=title, body="Top up soon.", link="/#plans",
        dedupe_key=key or f"{kind}:{account.pk}:{Notification.objects.count()}",
    )  # fmt: skip


def test_the_bell_counts_unread_alerts_in_one_query(student_client, student, django_assert_max_num_queries):
    alert(student)
    alert(student, kind="lot_expiring_7d")
    alert(make_student())  # someone else's

    with django_assert_max_num_queries(3):  # session, user, the count
        text = student_client.get(reverse("student:alert_bell")).content.decode()

    assert '<span class="bell-count" data-testid="unread-count">2</span>' in text
    assert 'hx-trigger="every 60s' in text


def test_the_banner_shows_the_most_urgent_alert(student_client, student):
    alert(student, kind="lot_expiring_7d", title="Hours expiring within a week")
    alert(student, kind="payment_failed", title="A payment failed")
    alert(student, kind="low_balance", title="Only 1 h left")

    text = student_client.get(reverse("student:alert_banner")).content.decode()

    assert "A payment failed." in text and "Only 1 h left" not in text


def test_the_banner_leaves_balance_alerts_and_good_news_to_others(student_client, student):
    alert(student, kind="low_balance", title="Only 1 h left")
    alert(student, kind="payment_succeeded", title="10 h added")

    text = student_client.get(reverse("student:alert_banner")).content.decode()

    assert "Only 1 h left" not in text and "10 h added" not in text


def test_marking_one_alert_read_and_then_all(student_client, student):
    first, second = alert(student), alert(student, kind="lot_expired", title="1 h expired unused")

    response = student_client.post(
        reverse("student:alert_mark_read", args=[first.pk]), headers={"HX-Request": "true", "HX-Target": "inbox"}
    )
    assert client_events(response) == {"alertsChanged"}
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at and not second.read_at

    student_client.post(reverse("student:alert_mark_all_read"))
    second.refresh_from_db()
    assert second.read_at


def test_another_students_alert_cannot_be_marked(student_client):
    theirs = alert(make_student())
    response = student_client.post(reverse("student:alert_mark_read", args=[theirs.pk]))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_the_inbox_lists_only_own_alerts(student_client, student):
    alert(student, title="Mine")
    alert(make_student(), title="Not mine")

    text = student_client.get(reverse("student:alerts")).content.decode()

    assert "Mine" in text and "Not mine" not in text


def test_email_settings_turn_kinds_off(student_client, student):
    response = student_client.post(reverse("student:alert_preferences"), {"emailed": ["payment_failed"]})

    assert response.status_code == 302
    off = set(EmailOptOut.objects.filter(user=student.user).values_list("kind", flat=True))
    assert "low_balance" in off and "payment_failed" not in off
    page = student_client.get(reverse("student:alert_preferences"), follow=True).content.decode()  # the account page
    assert re.search(r'value="payment_failed" id="id_emailed_\d+" checked>', page)
    assert re.search(r'value="low_balance" id="id_emailed_\d+">', page)


@pytest.mark.parametrize("name", ["student:alerts", "student:alert_bell", "student:alert_preferences"])
def test_alert_pages_need_signing_in(client, db, name):
    assert client.get(reverse(name)).status_code == 302


def test_a_polled_fragment_sends_a_signed_out_browser_to_sign_in(client, db):
    response = client.get(reverse("student:alert_bell"), headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.content == b""
    assert client_redirect(response) == reverse("account_login")


def test_the_resume_link_reopens_the_pending_payment_on_the_dashboard(localstripe, student_client, student):
    payment = make_paid_payment(localstripe, account=student, number="4000002760003184")

    text = student_client.get(reverse("student:dashboard"), {"resume": payment.pk}).content.decode()

    assert f'hx-post="{reverse("student:payment_refresh", args=[payment.pk])}" hx-trigger="load"' in text
