"""Receipts, credit notes and their cancellations: a gapless number per series and calendar year, an
immutable snapshot of what the document states, a PDF rendered once with WeasyPrint and stored, and
the email carrying it. An issued document never changes: a refund that fails after its credit note
is answered by a cancellation of that credit note, not by an edit.

Numbers are allocated inside the transaction that settles the payment (or records the refund), on
a locked counter row: concurrent settlements wait for each other, and a rolled-back settlement
gives its number back, so numbers never repeat and never skip.

A document reads in its recipient's language and time zone, whoever causes it (a staff refund, a
webhook, a backfill): its snapshot is made under `reader_locale` of the student, and records the
language, which every later rendering of its PDF and email uses again.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from billing import background
from billing.audit import audit_record
from billing.formatting import date_text, datetime_text, hours_text, money_text, reader_locale
from billing.models import Lot, Receipt, ReceiptCounter, price_per_hour_cents
from billing.profiles import tax_id_label
from billing.versions import account_version_bump

logger = logging.getLogger(__name__)

# A new receipt's delivery task has long finished by then: still undelivered means it failed.
STALE_RECEIPT = timedelta(minutes=30)
UNDELIVERED_GIVE_UP = timedelta(days=2)
# The series each kind is numbered in. A cancellation takes the next credit-note number: it is the
# credit side's own correction (as a cancelling invoice takes the next invoice number), so the
# credit-note register stays one gapless sequence whose signed total is the money really refunded.
SERIES = {
    Receipt.Kind.RECEIPT: Receipt.Kind.RECEIPT,
    Receipt.Kind.CREDIT_NOTE: Receipt.Kind.CREDIT_NOTE,
    Receipt.Kind.CANCELLATION: Receipt.Kind.CREDIT_NOTE,
}
NUMBER_FORMATS = {Receipt.Kind.RECEIPT: "{year}-{sequence:06d}", Receipt.Kind.CREDIT_NOTE: "CN-{year}-{sequence:06d}"}


def receipt_number_allocate(*, kind, year):
    """The next number of a kind's series. Call inside the transaction that issues the document."""
    counter, _created = ReceiptCounter.objects.get_or_create(series=SERIES[kind], year=year)
    counter = ReceiptCounter.objects.select_for_update().get(pk=counter.pk)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


def receipt_issue(*, payment):
    """The receipt of a succeeded payment, issued once (a second call returns the same one)."""
    existing = Receipt.objects.filter(payment=payment).first()
    if existing:
        return existing
    with reader_locale(payment.account.user):
        return _receipt_issue(payment)


def _receipt_issue(payment):
    paid_at = payment.settled_at or timezone.now()
    lot = payment.lot
    card = payment.payment_method
    snapshot = document_parties(payment.account) | {
        "description": _("%(package)s: %(hours)s of tutoring")
        % {"package": payment.lot_name or payment.plan.name, "hours": hours_text(payment.minutes)},
        # A subscription invoice names the period it pays for.
        "period": _period(payment),
        "plan": payment.plan.name,
        "minutes": payment.minutes,
        "hours": hours_text(payment.minutes),
        "unit_price": money_text(price_per_hour_cents(payment.amount_cents, payment.minutes), payment.currency),
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "amount": money_text(payment.amount_cents, payment.currency),
        "card": f"{card.label}" if card else "",
        "paid_at": datetime_text(paid_at),
        "payment_intent": payment.stripe_payment_intent_id or "",
        "expires": date_text(lot.expires_at) if lot else "",
        "balance_after": hours_text(_available_minutes(payment.account_id)),
    }
    return _issue(kind=Receipt.Kind.RECEIPT, account=payment.account, snapshot=snapshot, payment=payment)


def credit_note_issue(*, refund):
    """The credit note of a refund, issued once, referring to the payment's receipt."""
    existing = Receipt.objects.filter(refund=refund).first()
    if existing:
        return existing
    payment = refund.payment
    with reader_locale(payment.account.user):
        return _credit_note_issue(refund, payment)


def _credit_note_issue(refund, payment):
    original = Receipt.objects.filter(payment=payment).first()
    snapshot = document_parties(payment.account) | {
        "description": _("Refund for %(plan)s") % {"plan": payment.plan.name},
        "corrects": original.number if original else "",
        "amount_cents": refund.amount_cents,
        "currency": refund.currency,
        "amount": money_text(refund.amount_cents, refund.currency),
        "hours_reversed": hours_text(refund.minutes_reversed),
        "hours_not_reversed": hours_text(refund.minutes_short) if refund.minutes_short else "",
        # A payment left for review credited no hours: the note must not read as if some were used.
        "no_hours_added": payment.lot_id is None,
        "refund": refund.stripe_refund_id,
        "payment_intent": payment.stripe_payment_intent_id or "",
    }
    return _issue(
        kind=Receipt.Kind.CREDIT_NOTE, account=payment.account, snapshot=snapshot, refund=refund, corrects=original
    )


def credit_note_cancel(*, refund, minutes_given_back):
    """Cancel the credit note of a refund that failed after it was issued, in full, once. Returns
    the cancellation, or None when the refund never had a credit note (nothing to cancel)."""
    credit_note = Receipt.objects.filter(refund=refund).first()
    if credit_note is None:
        return None
    existing = Receipt.objects.filter(cancels=credit_note).first()
    if existing:
        return existing
    with reader_locale(credit_note.account.user):
        return _credit_note_cancel(refund, credit_note, minutes_given_back)


def _credit_note_cancel(refund, credit_note, minutes_given_back):
    cancelled = credit_note.snapshot
    snapshot = document_parties(credit_note.account) | {
        "description": _("Cancels credit note %(number)s: the refund failed") % {"number": credit_note.number},
        "cancels": credit_note.number,
        # Formatted again rather than copied: the student may read another language by now.
        "cancels_issued_at": date_text(credit_note.issued_at),
        "corrects": cancelled["corrects"],
        "amount_cents": cancelled["amount_cents"],
        "currency": cancelled["currency"],
        "amount": money_text(cancelled["amount_cents"], cancelled["currency"]),
        "minutes_given_back": minutes_given_back,
        "hours_given_back": hours_text(minutes_given_back),
        "refund": refund.stripe_refund_id,
        "payment_intent": cancelled["payment_intent"],
    }
    return _issue(kind=Receipt.Kind.CANCELLATION, account=credit_note.account, snapshot=snapshot, cancels=credit_note)


def receipt_pdf(*, receipt):
    """The stored PDF's bytes; rendered now if it is missing (a render that failed earlier, or a
    file lost from storage)."""
    if receipt.pdf:
        try:
            with receipt.pdf.open("rb") as stored:
                return stored.read()
        except FileNotFoundError:
            Receipt.objects.filter(pk=receipt.pk).update(pdf="", pdf_rendered_at=None)
            receipt.pdf = ""
    receipt_render(receipt=receipt)
    with receipt.pdf.open("rb") as stored:
        return stored.read()


def receipt_render(*, receipt):
    """Render the PDF from the snapshot and store it, once: when two renders race, the first one
    stored wins and the other's file is removed. The number and snapshot never change."""
    from weasyprint import HTML  # heavy import (~0.6 s): only where PDFs are made

    with translation.override(receipt_language(receipt)):
        context = {"receipt": receipt, "doc": receipt.snapshot, "page_numbers": page_numbers_css()}
        html = render_to_string("billing/receipt.html", context)
    pdf = HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()
    rendered = Receipt(pk=receipt.pk)
    rendered.pdf.save(f"{receipt.year}/{receipt.filename}", ContentFile(pdf), save=False)
    now = timezone.now()
    stored = Receipt.objects.filter(pk=receipt.pk, pdf="").update(pdf=rendered.pdf.name, pdf_rendered_at=now)
    if not stored:
        rendered.pdf.delete(save=False)
    receipt.refresh_from_db(fields=["pdf", "pdf_rendered_at"])
    return receipt


def receipt_email(*, receipt, to=None):
    """Send the document as a PDF attachment (plain text and HTML), to the student or to `to`, in
    the document's language (its texts quote the snapshot's)."""
    context = {"receipt": receipt, "doc": receipt.snapshot}
    with translation.override(receipt_language(receipt)):
        message = EmailMultiAlternatives(
            subject=_email_subject(receipt),
            body=render_to_string("email/receipt.txt", context),
            to=[to or receipt.account.user.email],
        )
        message.attach_alternative(render_to_string("email/receipt.html", context), "text/html")
    message.attach(receipt.filename, receipt_pdf(receipt=receipt), "application/pdf")
    message.send()
    return receipt


def receipt_language(receipt):
    """The language a document was issued in (English for those issued before documents recorded
    it): every rendering uses it again, so an issued document never changes."""
    return receipt.snapshot.get("language") or settings.LANGUAGE_CODE


def receipt_resend(*, receipt, actor, to=None, ip_address=None):
    """Staff's "resend": queue the email (to the student, or to `to`) and audit it."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="receipt.resend",
            target=receipt,
            after={"to": to or receipt.account.user.email},
            ip_address=ip_address,
        )
        background.resend_receipt.on_commit(receipt.pk, to)


def receipt_deliver(*, receipt):
    """First delivery: render, then email once. The email is claimed before it is sent, so a
    queued task and the sweep can never both send it; a failed send gives the claim back."""
    if not receipt.pdf:
        receipt_render(receipt=receipt)
    claimed = Receipt.objects.filter(pk=receipt.pk, emailed_at__isnull=True).update(emailed_at=timezone.now())
    if not claimed:
        return receipt
    try:
        receipt_email(receipt=receipt)
    except Exception:
        Receipt.objects.filter(pk=receipt.pk).update(emailed_at=None)
        raise
    return receipt


def receipts_undelivered(*, now=None):
    """Receipts whose PDF or first email is still missing although their delivery task should have
    finished (issued over STALE_RECEIPT ago), up to two days back: after that a person (and the
    logs) must look, not a sweep."""
    now = now or timezone.now()
    return Receipt.objects.filter(
        Q(pdf="") | Q(emailed_at__isnull=True),
        issued_at__lte=now - STALE_RECEIPT,
        issued_at__gte=now - UNDELIVERED_GIVE_UP,
    ).select_related("account__user")


def receipts_deliver_undelivered(*, limit=100):
    """Deliver the undelivered receipts again, quietly: one that still fails is logged and tried by
    the next run. Returns how many were delivered."""
    delivered = 0
    for receipt in receipts_undelivered()[:limit]:
        try:
            receipt_deliver(receipt=receipt)
        except Exception:
            logger.exception("Receipt %s is still not delivered; the next run tries again.", receipt.pk)
        else:
            delivered += 1
    return delivered


def _issue(*, kind, account, snapshot, **links):
    """Number and store a document. Called under the student's `reader_locale`: the snapshot's
    texts are in their language, which it records for every later rendering."""
    issued_at = timezone.now()
    # The series' calendar year is the seller's, not the student's time zone.
    year = timezone.localtime(issued_at, timezone.get_default_timezone()).year
    with transaction.atomic():
        sequence = receipt_number_allocate(kind=kind, year=year)
        receipt = Receipt.objects.create(
            kind=kind,
            number=NUMBER_FORMATS[SERIES[kind]].format(year=year, sequence=sequence),
            year=year,
            sequence=sequence,
            account=account,
            issued_at=issued_at,
            snapshot=snapshot | {"issued_at": date_text(issued_at), "language": translation.get_language()},
            **links,
        )
        # The student's pages link to it from now on.
        account_version_bump(account_ids=[account.pk])
    # Robust: a queue that is down must not turn a settled payment into an error; the sweep
    # (render_missing_receipts) delivers the receipt later.
    background.deliver_receipt.on_commit(receipt.pk, robust=True)
    return receipt


def _email_subject(receipt):
    number = {"number": receipt.number}
    if receipt.kind == Receipt.Kind.CREDIT_NOTE:
        return _("Your credit note %(number)s") % number
    if receipt.kind == Receipt.Kind.CANCELLATION:
        return _("Your credit note cancellation %(number)s") % number
    return _("Your receipt %(number)s") % number


def page_numbers_css():
    """ "page 1 of 2" as the CSS `content` of the PDF's footer, from one translated sentence: the
    page counters are CSS, so the sentence is split around them."""
    counters = {"page": "\0counter(page)\0", "pages": "\0counter(pages)\0"}
    parts = (_("page %(page)s of %(pages)s") % counters).split("\0")
    # Even parts are text (quoted as CSS strings), odd ones the counters.
    return " ".join(
        part if index % 2 else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for index, part in enumerate(parts)
        if part or index % 2
    )


def _period(payment):
    if payment.period_start is None:
        return ""
    return f"{date_text(payment.period_start)} – {date_text(payment.period_end)}"


def _available_minutes(account_id):
    """The same figure as the dashboard's balance: hours in lots usable now."""
    return Lot.objects.filter(account_id=account_id).minutes_available(timezone.now())


def document_parties(account):
    """Who a document is from and to, as printed on receipts, credit notes and statements."""
    user = account.user
    return {
        "seller_name": settings.PORTAL_SELLER_NAME,
        "seller_address": settings.PORTAL_SELLER_ADDRESS,
        "seller_tax_id": settings.PORTAL_SELLER_TAX_ID,
        "seller_email": settings.PORTAL_SELLER_EMAIL,
        "student_name": user.get_full_name() or user.email,
        "student_email": user.email,
        # The billing details of the day: changed later, they print on later documents only.
        "student_address": account.billing_address,
        "student_tax_id": account.tax_id,
        "student_tax_label": tax_id_label(account.tax_id) if account.tax_id else "",
    }
