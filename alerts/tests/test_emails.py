"""Alert emails: sent once from Huey, skipped for kinds the student turned off, retried on failure."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from alerts.models import Notification
from alerts.notifications import EMAIL_ATTEMPTS, alerts_scan, email_preferences_save, emails_send_due
from billing.tests.builders import credit, make_student, use

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_balance_alert():
    account = make_student("low@example.com", first_name="Lea")
    credit(account, 600)
    use(account, 500)
    alerts_scan()
    return Notification.objects.get()


def test_each_alert_is_emailed_once_in_text_and_html(low_balance_alert):
    assert emails_send_due() == 1
    assert emails_send_due() == 0

    [message] = mail.outbox
    assert message.to == ["low@example.com"] and message.subject == "Only 1.67 h left"
    assert "Hello Lea," in message.body and "Your balance is running low." in message.body
    assert "http://127.0.0.1:8000/#plans" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and ">Top up</a>" in html
    low_balance_alert.refresh_from_db()
    assert low_balance_alert.email_status == "sent"


def test_a_kind_turned_off_is_not_emailed_but_still_shown(low_balance_alert):
    email_preferences_save(user=low_balance_alert.recipient, emailed_kinds=["payment_failed"])

    emails_send_due()

    assert mail.outbox == []
    low_balance_alert.refresh_from_db()
    assert low_balance_alert.email_status == "skipped" and low_balance_alert.read_at is None


def test_a_failing_mail_server_is_retried_and_never_blocks(low_balance_alert, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens

    assert emails_send_due() == 0
    low_balance_alert.refresh_from_db()
    assert (low_balance_alert.email_status, low_balance_alert.email_attempts) == ("pending", 1)
    assert emails_send_due() == 0  # not due again yet: the next attempt waits a little

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with time_machine.travel(low_balance_alert.email_next_attempt_at + timedelta(seconds=1)):
        assert emails_send_due() == 1
    assert len(mail.outbox) == 1


def test_an_email_that_keeps_failing_is_given_up_in_the_end(low_balance_alert, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9

    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(EMAIL_ATTEMPTS):
            emails_send_due()
            traveller.shift(timedelta(hours=3))  # past any backoff

    low_balance_alert.refresh_from_db()
    assert (low_balance_alert.email_status, low_balance_alert.email_attempts) == ("failed", EMAIL_ATTEMPTS)


def test_an_email_claimed_by_a_sender_that_died_is_sent_later(low_balance_alert):
    Notification.objects.filter(pk=low_balance_alert.pk).update(email_status="sending", email_claimed_at=timezone.now())

    assert emails_send_due() == 0  # another sender may still be at it
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert emails_send_due() == 1
