"""The student's name, billing address and tax number on receipts and credit notes: printed on the
documents issued after they were saved, never on (or off) a document issued before."""

import pytest

from billing import profiles, receipts, refunds
from billing.models import Receipt
from billing.tests.builders import make_paid_payment, make_student
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db
NIF = "123456789"


def details_save(account, **changes):
    fields = {"first_name": "Ana", "last_name": "Silva", "billing_address": "Rua Augusta 1\n1100-048 Lisboa"}
    return profiles.billing_details_save(account=account, **(fields | {"tax_id": NIF} | changes))


def rendered_again(receipt):
    """The document rendered afresh from its snapshot, as after its stored PDF was lost."""
    receipt.pdf.delete(save=False)
    Receipt.objects.filter(pk=receipt.pk).update(pdf="", pdf_rendered_at=None)
    receipt.refresh_from_db()
    return pdf_text(receipts.receipt_pdf(receipt=receipt))


def test_a_receipt_prints_the_name_address_and_nif_saved_before_it(localstripe):
    account = details_save(make_student("ana@example.com"))

    text = pdf_text(receipts.receipt_pdf(receipt=make_paid_payment(localstripe, account=account).receipt))

    for expected in ("Ana Silva", "ana@example.com", "Rua Augusta 1", "1100-048 Lisboa", f"NIF {NIF}"):
        assert expected in text, expected


def test_an_eu_vat_number_prints_as_a_vat_number(localstripe):
    account = details_save(make_student(), tax_id="DE 123456789")

    text = pdf_text(receipts.receipt_pdf(receipt=make_paid_payment(localstripe, account=account).receipt))

    assert "VAT number DE123456789" in text


def test_without_details_a_receipt_names_the_email_and_prints_no_tax_line(localstripe):
    account = make_student("bruno@example.com")

    text = pdf_text(receipts.receipt_pdf(receipt=make_paid_payment(localstripe, account=account).receipt))

    assert "bruno@example.com" in text
    assert "NIF" not in text and "VAT number" not in text


def test_an_issued_receipt_keeps_its_details_after_the_student_changes_them(localstripe):
    account = details_save(make_student("ana@example.com"))
    old = make_paid_payment(localstripe, account=account).receipt
    stored_before = receipts.receipt_pdf(receipt=old)

    details_save(account, first_name="Ana Maria", last_name="Sousa", billing_address="Rua do Ouro 5", tax_id="")
    new = make_paid_payment(localstripe, account=account).receipt

    old.refresh_from_db()
    assert receipts.receipt_pdf(receipt=old) == stored_before
    old_text = rendered_again(old)
    assert "Ana Silva" in old_text and "Rua Augusta 1" in old_text and f"NIF {NIF}" in old_text
    assert "Sousa" not in old_text and "Rua do Ouro" not in old_text
    new_text = pdf_text(receipts.receipt_pdf(receipt=new))
    assert "Ana Maria Sousa" in new_text and "Rua do Ouro 5" in new_text
    assert "Ana Silva" not in new_text and "NIF" not in new_text


def test_the_receipt_email_greets_the_student_by_the_name_of_the_day(localstripe, mailoutbox):
    account = details_save(make_student())
    receipt = make_paid_payment(localstripe, account=account).receipt

    details_save(account, first_name="Beatriz")
    receipts.receipt_email(receipt=receipt)

    assert mailoutbox[-1].body.startswith("Hello Ana Silva,")


def test_a_credit_note_prints_the_details_of_its_own_day(localstripe):
    account = details_save(make_student())
    payment = make_paid_payment(localstripe, account=account)
    details_save(account, last_name="Sousa", billing_address="Rua do Ouro 5", tax_id="ESB12345678")

    refund = refunds.refund_record(
        payment=payment, stripe_refund_id="re_1", amount_cents=15000, currency="EUR", status="succeeded"
    )

    text = pdf_text(receipts.receipt_pdf(receipt=refund.credit_note))
    assert "Ana Sousa" in text and "Rua do Ouro 5" in text and "VAT number ESB12345678" in text
    receipt_text = pdf_text(receipts.receipt_pdf(receipt=payment.receipt))
    assert "Ana Silva" in receipt_text and f"NIF {NIF}" in receipt_text
