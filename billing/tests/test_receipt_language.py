"""Receipts and credit notes read in their recipient's language, whoever causes them (a purchase
settled in an English request, a refund by English-speaking staff), and an issued document keeps
the language it was issued in when it is rendered again.

Real documents: WeasyPrint renders the PDF and pypdf reads it back. Money and dates come from Babel
and need no catalogue. The asserts marked NEEDS CATALOGUE check translated words: they pass only
once locale/pt_PT/LC_MESSAGES/django.mo is compiled (`make test` compiles it).
"""

import re

import pytest
from django.core import mail
from django.utils import translation

from billing import receipts
from billing.refunds import refund_issue
from billing.tasks import deliver_receipt
from billing.tests.builders import make_paid_payment, make_staff, make_student
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db

PORTUGUESE_DATE = re.compile(r"\b\d{1,2}/\d{1,2}/\d{4}\b")  # 1/12/2026


def readable(text):
    """Babel puts a no-break space between the amount and "€"; read it as a space."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


def bought_in_english(localstripe, account):
    """A purchase settled while English is active (a webhook, an English page): not the student's."""
    with translation.override("en"):
        return make_paid_payment(localstripe, account=account)


def delivered(receipt):
    deliver_receipt.call_local(receipt.pk)
    [message] = [message for message in mail.outbox if message.to == [receipt.account.user.email]]
    [(html, _mimetype)] = message.alternatives
    [(_filename, content, _type)] = message.attachments
    return message, html, pdf_text(content)


def test_a_portuguese_students_receipt_is_in_portuguese_after_an_english_purchase(localstripe):
    account = make_student(language="pt-pt")

    receipt = bought_in_english(localstripe, account).receipt
    message, html, text = delivered(receipt)

    assert receipt.snapshot["language"] == "pt-pt"
    assert receipt.snapshot["amount"] == "150,00\xa0€"
    assert PORTUGUESE_DATE.search(receipt.snapshot["paid_at"])
    assert "150,00 €" in readable(text) and "€150.00" not in text
    assert "15,00 €" in readable(text)  # price per hour
    assert PORTUGUESE_DATE.search(text)
    assert "150,00 €" in readable(message.body) and "150,00 €" in readable(html)
    assert '<html lang="pt-pt">' in html
    # NEEDS CATALOGUE: the words themselves.
    assert f"Recibo n.º {receipt.number}" in text
    assert "Standard: 10 h de explicações" in text
    assert message.subject == f"O seu recibo n.º {receipt.number}"
    assert "Obrigado pela compra" in message.body or "obrigado pela compra" in message.body


def test_an_english_students_receipt_stays_english(localstripe):
    account = make_student(language="en")

    with translation.override("pt-pt"):  # whatever the request's language
        receipt = make_paid_payment(localstripe, account=account).receipt
    message, html, text = delivered(receipt)

    assert receipt.snapshot["language"] == "en"
    assert f"Receipt {receipt.number}" in text
    assert "€150.00" in text and "150,00" not in text
    assert "Your balance after this purchase: 10 h" in text
    assert message.subject == f"Your receipt {receipt.number}"
    assert "thank you for your purchase" in message.body
    assert '<html lang="en">' in html


def test_a_student_without_a_language_gets_the_default_one(localstripe):
    receipt = bought_in_english(localstripe, make_student()).receipt

    assert receipt.snapshot["language"] == "en"
    assert f"Receipt {receipt.number}" in pdf_text(receipts.receipt_pdf(receipt=receipt))


def test_a_refund_by_english_staff_sends_a_portuguese_credit_note_to_a_portuguese_student(localstripe):
    student = make_student(language="pt-pt")
    payment = bought_in_english(localstripe, student)
    staff = make_staff()
    staff.language = "en"
    staff.save(update_fields=["language"])

    with translation.override("en"):  # the console request of an English-speaking staff member
        refund = refund_issue(payment=payment, amount_cents=15000, minutes=600, reason="Moved abroad", actor=staff)
    note = refund.credit_note
    message, html, text = delivered(note)

    assert note.snapshot["language"] == "pt-pt"
    assert note.snapshot["amount"] == "150,00\xa0€"
    assert "150,00 €" in readable(text) and "€150.00" not in text
    assert payment.receipt.number in text  # the receipt it corrects
    assert "150,00 €" in readable(message.body) and '<html lang="pt-pt">' in html
    # NEEDS CATALOGUE: the words themselves.
    assert f"Nota de crédito n.º {note.number}" in text
    assert "Reembolso de Standard" in text
    assert message.subject == f"A sua nota de crédito n.º {note.number}"


def test_a_receipt_rendered_again_keeps_the_language_it_was_issued_in(localstripe):
    account = make_student(language="pt-pt")
    receipt = bought_in_english(localstripe, account).receipt
    receipts.receipt_pdf(receipt=receipt)
    account.user.language = "en"  # the student switches language after the purchase
    account.user.save(update_fields=["language"])
    receipt.refresh_from_db()
    receipt.pdf.storage.delete(receipt.pdf.name)  # lost: the next download renders it again

    with translation.override("en"):
        text = pdf_text(receipts.receipt_pdf(receipt=receipt))
        receipts.receipt_email(receipt=receipt)  # staff's resend, from an English console

    assert receipt.snapshot["language"] == "pt-pt"
    assert "150,00 €" in readable(text) and "€150.00" not in text
    [message] = mail.outbox
    assert '<html lang="pt-pt">' in message.alternatives[0][0]
    # NEEDS CATALOGUE: the words themselves.
    assert f"Recibo n.º {receipt.number}" in text
    assert message.subject == f"O seu recibo n.º {receipt.number}"


def test_a_document_issued_before_languages_were_recorded_renders_in_english(localstripe):
    receipt = bought_in_english(localstripe, make_student(language="pt-pt")).receipt
    snapshot = {key: value for key, value in receipt.snapshot.items() if key != "language"}
    type(receipt).objects.filter(pk=receipt.pk).update(snapshot=snapshot)
    receipt.refresh_from_db()

    with translation.override("pt-pt"):
        text = pdf_text(receipts.receipt_pdf(receipt=receipt))

    assert f"Receipt {receipt.number}" in text
