"""Receipts and credit notes: gapless numbers, an immutable snapshot, a PDF a person can read."""

import io
from datetime import datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from billing import receipts, refunds
from billing.models import Receipt, ReceiptCounter
from billing.tasks import deliver_receipt, render_missing_receipts
from billing.tests.builders import make_paid_payment, use
from billing.tests.concurrency import run_at_once
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db
YEAR = timezone.localdate().year


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
    def allocate():
        with transaction.atomic():
            return receipts.receipt_number_allocate(kind="receipt", year=YEAR)

    numbers, errors = run_at_once(allocate, 12)

    assert errors == []
    assert sorted(numbers) == list(range(1, 13))


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


def test_issuing_again_returns_the_same_documents(localstripe):
    payment = make_paid_payment(localstripe)
    refund = refunds.refund_record(
        payment=payment, stripe_refund_id="re_2", amount_cents=1500, currency="EUR", status="succeeded"
    )

    assert receipts.receipt_issue(payment=payment) == payment.receipt
    assert receipts.credit_note_issue(refund=refund) == refund.credit_note
    assert Receipt.objects.count() == 2


def test_a_pending_refund_gets_its_credit_note_only_once_it_succeeds(localstripe):
    payment = make_paid_payment(localstripe)

    pending = refunds.refund_record(
        payment=payment, stripe_refund_id="re_3", amount_cents=1500, currency="EUR", status="pending"
    )
    assert not Receipt.objects.filter(kind="credit_note").exists()
    refunds.refund_record(
        payment=payment, stripe_refund_id="re_3", amount_cents=1500, currency="EUR", status="succeeded"
    )

    pending.refresh_from_db()
    assert pending.credit_note.number == f"CN-{YEAR}-000001"


def test_settling_a_payment_delivers_its_receipt_by_email_exactly_once(localstripe, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = make_paid_payment(localstripe)

    [message] = mail.outbox
    assert message.attachments[0][0] == payment.receipt.filename
    payment.receipt.refresh_from_db()
    assert payment.receipt.pdf and payment.receipt.emailed_at


def test_the_sweep_delivers_what_failed_and_never_sends_twice(localstripe, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # no mail server: the send fails
    receipt = make_paid_payment(localstripe).receipt
    with pytest.raises(OSError):
        deliver_receipt.call_local(receipt.pk)
    receipt.refresh_from_db()
    assert receipt.emailed_at is None  # the failed send gave its claim back

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        render_missing_receipts.call_local()
        render_missing_receipts.call_local()

    assert len(mail.outbox) == 1


def test_a_pdf_lost_from_storage_is_rendered_again(localstripe):
    receipt = make_paid_payment(localstripe).receipt
    receipts.receipt_pdf(receipt=receipt)
    receipt.refresh_from_db()
    receipt.pdf.storage.delete(receipt.pdf.name)

    data = receipts.receipt_pdf(receipt=receipt)

    assert data.startswith(b"%PDF") and receipt.number in pdf_text(data)


def test_the_backfill_issues_what_is_missing_in_order(localstripe):
    first, second = make_paid_payment(localstripe), make_paid_payment(localstripe)
    Receipt.objects.all().delete()  # as if they had been settled before receipts existed
    ReceiptCounter.objects.all().delete()

    call_command("receipts_backfill", stdout=io.StringIO())
    call_command("receipts_backfill", stdout=io.StringIO())

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.receipt.sequence, second.receipt.sequence) == (1, 2)
