"""One payment, one local time: the console's table, the console's payment page, the student's
page and the receipt all show the moment a payment was made in the portal's time zone, never in UTC
(the console's table once showed 18:16 for a payment its receipt said was made at 19:16)."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from billing.models import FraudFlag
from billing.receipts import receipt_pdf
from billing.tests.builders import make_paid_payment, make_student
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db

# 23:16 UTC on 28 November is 00:16 on the 29th in Berlin: both the hour and the date differ.
PAID_AT_UTC = datetime(2026, 11, 28, 23, 16, tzinfo=UTC)
LOCAL = "29 Nov 2026, 00:16"
UTC_TEXT = "28 Nov 2026, 23:16"


@pytest.fixture
def paid(localstripe, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    with time_machine.travel(PAID_AT_UTC, tick=False):
        return make_paid_payment(localstripe, account=make_student("late.payer@example.com"))


def shown(response):
    assert response.status_code == 200
    return response.content.decode()


def test_the_console_table_shows_the_local_time(support_client, paid):
    page = shown(support_client.get(reverse("console:payments")))
    assert LOCAL in page and UTC_TEXT not in page


def test_the_console_payment_page_shows_the_local_time(support_client, paid):
    page = shown(support_client.get(reverse("console:payment", args=[paid.pk])))
    assert f"{LOCAL}:00" in page and UTC_TEXT not in page  # its timeline counts seconds


def test_the_students_page_shows_the_local_time(client, paid):
    client.force_login(paid.account.user)
    page = shown(client.get(reverse("student:lot_detail", args=[paid.lot_id])))
    assert LOCAL in page and UTC_TEXT not in page


def test_the_receipt_shows_the_local_time(paid):
    text = pdf_text(receipt_pdf(receipt=paid.receipt))
    assert LOCAL in text and UTC_TEXT not in text


def test_the_fraud_queue_shows_the_moments_in_its_evidence_in_local_time(support_client, paid):
    FraudFlag.objects.create(
        account=paid.account,
        payment=paid,
        rule=FraudFlag.Rule.ATTEMPTS,
        evidence={"attempts": 6, "first_at": PAID_AT_UTC.isoformat()},  # kept as UTC text
    )
    page = shown(support_client.get(reverse("console:flags")))
    assert f"{LOCAL}:00" in page and PAID_AT_UTC.isoformat() not in page
