"""Receipts for students: a list, a download link beside each purchase, and the PDF only for its owner and staff."""

import pytest
from django.urls import reverse

from billing.tests.builders import make_paid_payment, make_student


@pytest.fixture
def receipt(localstripe, student):
    return make_paid_payment(localstripe, account=student).receipt


def download(client, receipt):
    return client.get(reverse("student:receipt_download", args=[receipt.pk]))


def test_the_owner_downloads_the_pdf_named_by_its_number(student_client, receipt):
    response = download(student_client, receipt)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="receipt-{receipt.number}.pdf"'
    assert response.content.startswith(b"%PDF")


def test_staff_download_receipts_from_the_console_only(support_client, receipt):
    response = support_client.get(reverse("console:receipt_download", args=[receipt.pk]))
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    assert download(support_client, receipt).status_code == 404  # the student's link is the student's


def test_staff_without_a_console_session_cannot_download(client, staff_user, receipt):
    client.force_login(staff_user)  # no console group, no two-factor step
    assert download(client, receipt).status_code == 404
    assert client.get(reverse("console:receipt_download", args=[receipt.pk])).status_code == 404


def test_another_student_is_told_it_does_not_exist(client, receipt):
    client.force_login(make_student().user)
    assert download(client, receipt).status_code == 404


def test_anonymous_visitors_sign_in_first(client, receipt):
    response = download(client, receipt)
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_the_receipts_page_lists_number_description_amount_and_link(student_client, receipt):
    text = student_client.get(reverse("student:receipts")).content.decode()

    assert f"Receipt {receipt.number}" in text
    assert "Standard: 10 h of tutoring" in text
    assert "€150.00" in text
    assert f'href="{reverse("student:receipt_download", args=[receipt.pk])}"' in text


def test_each_purchase_links_its_receipt_as_a_plain_download(student_client, receipt):
    text = student_client.get(reverse("student:dashboard")).content.decode()
    url = reverse("student:receipt_download", args=[receipt.pk])
    # The purchase table swaps itself with HTMX (hx-boost); the receipt link must not be boosted.
    assert f'<a href="{url}" download hx-boost="false">Receipt {receipt.number}</a>' in text


def test_the_receipts_page_shows_only_the_students_own(client, receipt):
    client.force_login(make_student().user)
    text = client.get(reverse("student:receipts")).content.decode()
    assert receipt.number not in text and "No receipts yet" in text
