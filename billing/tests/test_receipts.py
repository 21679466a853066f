"""Receipts and credit notes: gapless numbers, an immutable snapshot, a PDF a person can read."""

import io
import threading
from datetime import datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone
from pypdf import PdfReader

from billing import receipts, refunds
from billing.models import Receipt
from billing.tasks import deliver_receipt
from billing.tests.builders import make_paid_payment, use

pytestmark = pytest.mark.django_db
YEAR = timezone.localdate().year


def pdf_text(data):
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_a_succeeded_payment_gets_a_numbered_receipt_that_reads_right(localstripe):
    payment = make_paid_payment(localstripe)

    receipt = payment.receipt
    text = pdf_text(receipts.receipt_pdf(receipt=receipt))

    assert receipt.number == f"{YEAR}-000001"
    assert receipt.filename == f"receipt-{YEAR}-000001.pdf"
    for expected in (
        f"Receipt {YEAR}-000001",
        "Standard: 10 h of tutoring",
        "€150.00",
        "€15.00",  # price per hour
        "Visa 4242",
        payment.stripe_payment_intent_id,
        payment.account.user.email,
        "Tutoring Hours GmbH",
        "Your balance after this purchase: 10 h",
    ):
        assert expected in text, expected


def test_numbers_follow_each_other_and_a_second_settlement_issues_nothing(localstripe):
    first = make_paid_payment(localstripe)
    second = make_paid_payment(localstripe)

    from billing import payments, stripe_gateway

    payments.payment_intent_settle(intent=stripe_gateway.payment_intent_retrieve(first.stripe_payment_intent_id))

    assert [r.number for r in Receipt.objects.order_by("sequence")] == [f"{YEAR}-000001", f"{YEAR}-000002"]
    assert second.receipt.sequence == 2


def test_a_refund_gets_a_credit_note_that_refers_to_the_receipt(localstripe):
    payment = make_paid_payment(localstripe)
    use(payment.account, 60)

    refund = refunds.refund_record(
        payment=payment, stripe_refund_id="re_1", amount_cents=15000, currency="EUR", status="succeeded"
    )

    note = refund.credit_note
    text = pdf_text(receipts.receipt_pdf(receipt=note))
    assert note.number == f"CN-{YEAR}-000001" and note.corrects == payment.receipt
    assert f"Credit note CN-{YEAR}-000001" in text
    assert payment.receipt.number in text
    assert "€150.00" in text and "9 h" in text  # refunded; hours taken back
    assert "1 h of the refunded hours had already been used" in text


def test_a_new_year_starts_a_new_series(localstripe):
    make_paid_payment(localstripe)
    with time_machine.travel(datetime(YEAR + 1, 1, 1, 12, tzinfo=timezone.get_current_timezone())):
        next_year = make_paid_payment(localstripe).receipt

    assert next_year.number == f"{YEAR + 1}-000001"


def test_a_rolled_back_settlement_gives_its_number_back():
    with pytest.raises(RuntimeError), transaction.atomic():
        receipts.receipt_number_allocate(kind="receipt", year=YEAR)
        raise RuntimeError("the settlement failed")

    with transaction.atomic():
        assert receipts.receipt_number_allocate(kind="receipt", year=YEAR) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_settlements_never_share_or_skip_a_number():
    workers = 12
    start = threading.Barrier(workers)
    numbers = []

    def allocate():
        try:
            start.wait()
            with transaction.atomic():
                numbers.append(receipts.receipt_number_allocate(kind="receipt", year=YEAR))
        finally:
            connection.close()

    threads = [threading.Thread(target=allocate) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(numbers) == list(range(1, workers + 1))


def test_the_student_gets_the_receipt_by_email_once(localstripe):
    receipt = make_paid_payment(localstripe).receipt

    deliver_receipt.call_local(receipt.pk)
    deliver_receipt.call_local(receipt.pk)  # a retry after success sends nothing more

    [message] = mail.outbox
    assert message.to == [receipt.account.user.email]
    assert message.subject == f"Your receipt {receipt.number}"
    assert "Your receipt " + receipt.number in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and receipt.number in html
    [(filename, content, attachment_type)] = message.attachments
    assert (filename, attachment_type) == (receipt.filename, "application/pdf")
    assert receipt.number in pdf_text(content)


def test_a_render_failure_keeps_the_receipt_and_the_next_download_recovers(localstripe, settings, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the receipts folder should be")
    settings.MEDIA_ROOT = blocked
    receipt = make_paid_payment(localstripe).receipt

    with pytest.raises(OSError):
        deliver_receipt.call_local(receipt.pk)
    receipt.refresh_from_db()
    assert not receipt.pdf and receipt.number == f"{YEAR}-000001"

    settings.MEDIA_ROOT = tmp_path / "media"
    data = receipts.receipt_pdf(receipt=receipt)

    receipt.refresh_from_db()
    assert data.startswith(b"%PDF") and receipt.pdf and receipt.number == f"{YEAR}-000001"
    assert timezone.now() - receipt.pdf_rendered_at < timedelta(minutes=1)
