"""A student's copy of all their data: a ZIP with data.json and their receipts' PDFs, downloaded by
the student from the account page (rate-limited) or by staff of either level from the console
(audited). It holds every kind of record of theirs, in cents with the currency and ISO 8601 times,
nothing of anyone else and no secret, and costs the same queries however long the history."""

import io
import json
import zipfile
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import AuditEntry, Receipt
from billing.tests.builders import credit, make_paid_payment, make_student, use
from billing.tests.pdfs import pdf_text
from portal.privacy import privacy_export
from portal.tests.privacy_history import ADDRESS, BROWSER, EMAIL, NIF, SIGN_IN_ADDRESS, student_with_history

pytestmark = pytest.mark.django_db

STUDENT_URL = reverse("student:data_export")


def console_url(account):
    return reverse("console:student_data_export", args=[account.pk])


def unzipped(content):
    """{name: bytes} of a ZIP's files."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def exported(account):
    with privacy_export(account=account) as archive_file:
        return unzipped(archive_file.read())


def data_of(files):
    return json.loads(files["data.json"])


@pytest.fixture
def history(localstripe, finance_user):
    return student_with_history(localstripe, finance_user)


@pytest.fixture
def data(history):
    return data_of(exported(history.account))


# What it holds


def test_the_profile_has_the_email_names_language_time_zone_and_dates(data, history):
    profile = data["profile"]

    assert (profile["email"], profile["first_name"], profile["last_name"]) == (EMAIL, "Ana", "Silva")
    assert (profile["language"], profile["time_zone"]) == ("pt-pt", "Europe/Lisbon")
    assert datetime.fromisoformat(profile["joined_at"]) == history.user.date_joined.replace(microsecond=0)
    assert profile["email_addresses"] == [{"email": EMAIL, "verified": True, "primary": True}]
    assert profile["two_factor_methods"] == ["totp"]


def test_it_holds_the_account_and_billing_details(data, history):
    assert data["account"]["id"] == history.account.pk
    assert data["account"]["balance_minutes"] == history.account.balance_minutes == 600 - 90 - 60
    assert data["billing_details"] == {"billing_address": ADDRESS, "tax_id": NIF}


def test_it_holds_the_lots_ledger_and_sessions(data, history):
    assert [lot["id"] for lot in data["lots"]] == [history.payment.lot_id]
    assert [entry["kind"] for entry in data["ledger_entries"]] == ["credit", "usage", "reversal"]
    assert sum(entry["minutes"] for entry in data["ledger_entries"]) == history.account.balance_minutes
    assert [(session["minutes"], session["subject"]) for session in data["sessions"]] == [(90, "Mathematics")]


def test_money_is_in_cents_with_its_currency(data, history):
    (payment,) = data["payments"]
    assert (payment["amount_cents"], payment["currency"], payment["status"]) == (15000, "EUR", "succeeded")
    assert payment["stripe_payment_intent_id"] == history.payment.stripe_payment_intent_id
    (refund,) = data["refunds"]
    assert (refund["amount_cents"], refund["currency"], refund["minutes_taken_back"]) == (1500, "EUR", 60)
    (dispute,) = data["disputes"]
    assert (dispute["amount_cents"], dispute["currency"], dispute["status"]) == (2000, "EUR", "won")


def test_times_are_iso_8601_with_their_offset_in_the_students_time_zone(data, history):
    paid_at = datetime.fromisoformat(data["payments"][0]["settled_at"])

    assert paid_at == history.payment.settled_at.replace(microsecond=0)
    # Lisbon's offset, an hour off the school's (Europe/Berlin) all year round.
    assert paid_at.utcoffset() == history.payment.settled_at.astimezone(ZoneInfo("Europe/Lisbon")).utcoffset()


def test_cards_are_brand_last_four_and_expiry_only(data):
    (card,) = data["cards"]

    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"]) == ("visa", "4242", 12, 2034)
    assert set(card) == {"brand", "last4", "exp_month", "exp_year", "default", "added_at", "removed_at"}


def test_it_holds_alerts_sign_ins_automatic_top_up_and_subscriptions(data):
    assert [alert["body"] for alert in data["alerts"]] == ["Thank you, Ana."]
    assert [(sign_in["ip_address"], sign_in["browser"]) for sign_in in data["sign_ins"]] == [(SIGN_IN_ADDRESS, BROWSER)]
    top_up = data["automatic_top_up"]
    assert (top_up["status"], top_up["below_minutes"], top_up["most_a_month_cents"]) == ("active", 60, 30000)
    assert top_up["currency"] == "EUR" and top_up["card"] == "Visa 4242"
    assert [event["kind"] for event in data["automatic_top_up_events"]] == ["saved"]
    assert data["subscriptions"] == []


def test_every_receipt_and_credit_note_is_in_it_as_a_pdf(history):
    files = exported(history.account)
    listed = data_of(files)["receipts"]

    numbers = sorted(Receipt.objects.filter(account=history.account).values_list("number", flat=True))
    assert sorted(document["number"] for document in listed) == numbers and len(numbers) == 2
    for document in listed:
        assert document["file"] in files
        assert document["number"] in pdf_text(files[document["file"]])
    credit_note = next(document for document in listed if document["kind"] == "credit_note")
    assert (credit_note["amount_cents"], credit_note["currency"]) == (1500, "EUR")


def test_a_receipt_whose_pdf_was_never_rendered_is_rendered_for_it(history):
    receipt = history.payment.receipt
    assert not receipt.pdf  # the test's transaction never committed, so its delivery never ran

    files = exported(history.account)

    assert receipt.number in pdf_text(files[f"receipts/{receipt.filename}"])
    receipt.refresh_from_db()
    assert receipt.pdf  # and stored, as every other download does


def test_a_pdf_lost_from_storage_is_rendered_again(history):
    receipt = history.payment.receipt
    exported(history.account)
    receipt.refresh_from_db()
    receipt.pdf.storage.delete(receipt.pdf.name)

    files = exported(history.account)

    assert receipt.number in pdf_text(files[f"receipts/{receipt.filename}"])


# What it never holds


def test_it_holds_no_secret(history):
    text = exported(history.account)["data.json"].decode()

    assert history.user.password not in text
    assert "secret" not in text.lower()
    assert "pm_" not in text and "cus_" not in text  # Stripe's handles of cards and customers


def test_it_holds_nothing_of_another_student(history, localstripe):
    other = make_paid_payment(localstripe, account=make_student("bruno@example.com", first_name="Bruno")).account
    use(other, 45, subject="Chemistry")

    files = exported(history.account)
    text = b"".join(files.values()).decode("latin-1")

    assert "bruno@example.com" not in text and "Bruno" not in text and "Chemistry" not in text
    assert set(files) == {"data.json"} | {f"receipts/{r.filename}" for r in history.account.receipts.all()}


# Bounded


def test_it_costs_the_same_queries_for_a_long_history(student):
    credit(student, 600)
    use(student, 30)
    exported(student)
    with CaptureQueriesContext(connection) as short:
        exported(student)
    for _ in range(20):
        credit(student, 600)
        use(student, 30)

    with CaptureQueriesContext(connection) as long:
        exported(student)

    assert len(long) == len(short)


# The student's download


def test_the_account_page_offers_the_download(student_client):
    text = student_client.get(reverse("student:account")).content.decode()

    assert f'href="{STUDENT_URL}"' in text and "Download my data" in text


def test_the_student_downloads_their_own_zip(client, history):
    client.force_login(history.user)

    response = client.get(STUDENT_URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="my-data-')
    assert data_of(unzipped(b"".join(response.streaming_content)))["profile"]["email"] == EMAIL


def test_the_download_is_a_get(client, history):
    client.force_login(history.user)
    assert client.post(STUDENT_URL).status_code == 405


def test_signed_out_visitors_are_sent_to_sign_in(client, db):
    response = client.get(STUDENT_URL)

    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_downloads_are_rate_limited(student_client, settings):
    settings.PORTAL_RATE_LIMITS = settings.PORTAL_RATE_LIMITS | {"privacy_export": {"user": "2/h", "ip": "100/h"}}

    answers = [student_client.get(STUDENT_URL).status_code for _ in range(3)]

    assert answers == [200, 200, 429]


def test_the_default_limit_is_in_place(settings):
    assert settings.PORTAL_RATE_LIMITS["privacy_export"] == {"user": "5/h", "ip": "20/h"}


# Staff's download


@pytest.mark.parametrize("level", ["support", "finance"])
def test_staff_of_either_level_download_it_and_it_is_audited(request, level, history):
    client, staff = request.getfixturevalue(f"{level}_client"), request.getfixturevalue(f"{level}_user")

    response = client.post(console_url(history.account))

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith(f'attachment; filename="student-{history.account.pk}-data-')
    assert data_of(unzipped(b"".join(response.streaming_content)))["profile"]["email"] == EMAIL
    entry = AuditEntry.objects.get(action="privacy.export")
    assert (entry.actor, entry.account_id) == (staff, history.account.pk)


def test_the_student_page_offers_it_to_staff(support_client, history):
    text = support_client.get(reverse("console:student", args=[history.account.pk])).content.decode()

    assert f'action="{console_url(history.account)}"' in text and "Download their data" in text


def test_staff_download_by_post_only(support_client, history):
    assert support_client.get(console_url(history.account)).status_code == 405
    assert not AuditEntry.objects.filter(action="privacy.export").exists()


def test_a_student_cannot_download_anothers_from_the_console(student_client, history):
    assert student_client.post(console_url(history.account)).status_code == 404


def test_an_unknown_student_is_not_found(support_client, db):
    assert support_client.post(reverse("console:student_data_export", args=[999999])).status_code == 404
