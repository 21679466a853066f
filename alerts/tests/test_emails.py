"""Alert emails: sent once from Huey, skipped for kinds the student turned off, retried on failure."""

import pytest
from django.core import mail

from alerts.models import Notification
from alerts.notifications import alerts_scan, email_preferences_save, emails_send_due
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

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert emails_send_due() == 1
    assert len(mail.outbox) == 1
