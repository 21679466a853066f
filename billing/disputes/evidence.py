"""Answering a dispute from the console: a draft of evidence prefilled from our records
(billing.disputes.texts), saved as staff edit it, submitted to Stripe once with its documents as
PDFs; or the dispute accepted (closed as lost). Each step is audited, and a step Stripe refuses or
leaves unanswered changes nothing here but the audit log.

What staff read (field labels, refusals) is in their language; the evidence itself (its prefilled
texts and its PDFs) is always English, since Stripe's and the card network's reviewers read it.
"""

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import ledger, stripe_gateway
from billing.audit import audit_record
from billing.disputes import texts
from billing.disputes.holds import dispute_record
from billing.errors import BillingError, ProviderRequestInvalid, ProviderUnavailable
from billing.models import Dispute, Payment, Receipt
from billing.receipts import receipt_pdf

# Evidence: Stripe's field names, in the order the console form shows them.
# The labels are lazy: staff read them in their language, the PDFs sent to Stripe in English.
EVIDENCE_FIELDS = {
    "product_description": gettext_lazy("Product description"),
    "customer_communication": gettext_lazy("Customer communication"),
    "service_date": gettext_lazy("Service date"),
    "service_documentation": gettext_lazy("Service documentation"),
    "receipt": gettext_lazy("Receipt"),
    "access_activity_log": gettext_lazy("Access activity log"),
    "uncategorized_text": gettext_lazy("Other information"),
}
# The evidence's own language, whoever prepares it.
EVIDENCE_LANGUAGE = "en"
# Stripe takes these as uploaded files: our text goes as a small PDF, the receipt as its own PDF.
FILE_FIELDS = {"customer_communication", "service_documentation", "receipt"}
# Stripe caps each text field at 20,000 characters and all of them together at 150,000; our four
# text fields, capped, stay under both.
EVIDENCE_MAX_CHARS = 20_000


class DisputeRefused(BillingError):
    """We refused to change a dispute's evidence or to accept it; nothing was sent to Stripe."""


class DisputeProviderFailed(BillingError):
    """Stripe refused or did not answer; `maybe_sent` tells whether Stripe may have acted anyway."""

    def __init__(self, message, *, maybe_sent):
        self.maybe_sent = maybe_sent
        super().__init__(message)


def dispute_evidence_prefill(*, dispute, messages=()):
    """The evidence form's starting values: what our records show, with any saved draft winning
    field by field (a field staff cleared stays cleared). `messages` are the (time, text) of what
    we told the student about this payment (alerts gives them: billing does not read alerts)."""
    payment = Payment.objects.select_related("account__user", "plan", "lot").get(pk=dispute.payment_id)
    receipt = Receipt.objects.filter(payment=payment).first()
    sessions = texts.lot_sessions(payment.lot)
    with translation.override(EVIDENCE_LANGUAGE):  # money and dates as English reads them
        prefill = {
            "product_description": texts.product_description(payment),
            "customer_communication": texts.customer_communication(payment, receipt, messages),
            "service_date": texts.service_date(payment, sessions),
            "service_documentation": texts.service_documentation(payment, sessions),
            "receipt": receipt.number if receipt else "",
            "access_activity_log": texts.access_activity_log(payment),
            "uncategorized_text": "",
        }
    saved = {field: text for field, text in (dispute.evidence or {}).items() if field in EVIDENCE_FIELDS}
    return prefill | saved


def dispute_evidence_save(*, dispute, evidence, actor, ip_address=None):
    """Save a draft of the evidence: known fields only, trimmed and capped; fields not given keep
    their saved text. Refused once Stripe no longer takes evidence for the dispute."""
    with transaction.atomic():
        dispute = _lock(dispute)
        _refuse_unless_evidence_open(dispute)
        before = dict(dispute.evidence or {})
        dispute.evidence = before | _evidence_clean(evidence)
        dispute.evidence_saved_at = timezone.now()
        dispute.save(update_fields=["evidence", "evidence_saved_at", "updated_at"])
        changed = sorted(field for field in dispute.evidence if dispute.evidence[field] != before.get(field))
        audit_record(
            actor=actor,
            action="dispute.evidence_save",
            target=dispute,
            before={field: before.get(field, "") for field in changed},
            after={field: dispute.evidence[field] for field in changed},
            ip_address=ip_address,
        )
    return dispute


def dispute_evidence_submit(*, dispute, evidence, actor, ip_address=None):
    """Save the draft, upload its documents and submit it to Stripe as final, then apply the dispute
    Stripe returns. When Stripe refuses or does not answer, the draft stays saved and unsubmitted."""
    dispute = dispute_evidence_save(dispute=dispute, evidence=evidence, actor=actor, ip_address=ip_address)
    draft = dict(dispute.evidence)
    sent = {field: text for field, text in draft.items() if text}
    if not sent:
        raise DisputeRefused(_("There is no evidence to submit: fill in at least one field."))
    try:
        stripe_evidence = _stripe_evidence(dispute, sent)
        dispute_object = stripe_gateway.dispute_evidence_submit(
            dispute_id=dispute.stripe_dispute_id, evidence=stripe_evidence, submit=True
        )
    except (ProviderRequestInvalid, ProviderUnavailable) as error:
        failure = _provider_failure(
            error,
            refused=_("Stripe did not take the evidence: %(reason)s The draft is saved and was not submitted."),
            unanswered=_(
                "Stripe did not answer, so the evidence may or may not have reached it. The draft is "
                "saved; check the dispute in the Stripe Dashboard before submitting again."
            ),
        )
        _audit_failure(dispute, actor=actor, action="dispute.evidence_submit_failed", error=failure, ip=ip_address)
        raise failure from error
    with transaction.atomic():
        dispute = dispute_record(
            payment=dispute.payment, dispute_object=dispute_object, event_type="charge.dispute.updated"
        )
        dispute.evidence = draft  # what Stripe got, whatever a second tab saved meanwhile
        dispute.evidence_submitted_at = timezone.now()
        dispute.save(update_fields=["evidence", "evidence_submitted_at", "updated_at"])
        audit_record(
            actor=actor,
            action="dispute.evidence_submit",
            target=dispute,
            after={"evidence": stripe_evidence, "status": dispute.status},
            ip_address=ip_address,
        )
    return dispute


def dispute_accept(*, dispute, actor, reason, ip_address=None):
    """Accept the dispute (Stripe closes it as lost): the money stays with the card holder and the
    lot's held hours are gone for good."""
    reason = (reason or "").strip()
    dispute.refresh_from_db()
    if dispute.closed:
        raise DisputeRefused(
            _("This dispute is already closed (%(status)s).") % {"status": dispute.get_status_display().lower()}
        )
    if dispute.status not in Dispute.AWAITING_RESPONSE:
        raise DisputeRefused(
            _("This dispute is %(status)s: Stripe takes an acceptance only while the dispute needs a response.")
            % {"status": dispute.get_status_display().lower()}
        )
    if not reason:
        raise DisputeRefused(_("Give a reason for accepting the dispute; it goes into the audit log."))
    try:
        dispute_object = stripe_gateway.dispute_close(dispute.stripe_dispute_id)
    except (ProviderRequestInvalid, ProviderUnavailable) as error:
        failure = _provider_failure(
            error,
            refused=_("Stripe did not close the dispute: %(reason)s It stays open."),
            unanswered=_(
                "Stripe did not answer, so the dispute may or may not be closed. Check it in the Stripe "
                "Dashboard before trying again."
            ),
        )
        _audit_failure(dispute, actor=actor, action="dispute.accept_failed", error=failure, ip=ip_address)
        raise failure from error
    with transaction.atomic():
        before = {"status": dispute.status, "minutes_held": dispute.minutes_held}
        dispute = dispute_record(
            payment=dispute.payment, dispute_object=dispute_object, event_type="charge.dispute.closed"
        )
        dispute.accepted_at = timezone.now()
        dispute.save(update_fields=["accepted_at", "updated_at"])
        audit_record(
            actor=actor,
            action="dispute.accept",
            target=dispute,
            reason=reason,
            before=before,
            after={"status": dispute.status, "minutes_held": dispute.minutes_held},
            ip_address=ip_address,
        )
    return dispute


def _lock(dispute):
    # The account first, as dispute_record does, so the two never wait for each other in turn.
    ledger.account_lock(account_id=dispute.payment.account_id)
    return Dispute.objects.select_for_update().get(pk=dispute.pk)


def _refuse_unless_evidence_open(dispute):
    if dispute.accepted_at:
        raise DisputeRefused(
            _("This dispute was accepted on %(when)s; its evidence is final.")
            % {"when": texts.when(dispute.accepted_at)}
        )
    if dispute.closed:
        raise DisputeRefused(
            _("This dispute is closed (%(status)s); Stripe no longer takes evidence for it.")
            % {"status": dispute.get_status_display().lower()}
        )
    if dispute.evidence_submitted_at:
        raise DisputeRefused(
            _("The evidence was submitted on %(when)s; Stripe takes one submission.")
            % {"when": texts.when(dispute.evidence_submitted_at)}
        )
    if dispute.status in Dispute.IN_REVIEW:
        raise DisputeRefused(_("Stripe is already reviewing evidence for this dispute (submitted in its Dashboard)."))
    if dispute.evidence_due_by and dispute.evidence_due_by <= timezone.now():
        raise DisputeRefused(
            _("The evidence was due on %(when)s; Stripe no longer accepts it.")
            % {"when": texts.when(dispute.evidence_due_by)}
        )


def _evidence_clean(evidence):
    return {
        field: ("" if text is None else str(text)).strip()[:EVIDENCE_MAX_CHARS]
        for field, text in evidence.items()
        if field in EVIDENCE_FIELDS
    }


def _stripe_evidence(dispute, evidence):
    """Our draft as Stripe takes it: text fields as text, file fields as ids of uploaded PDFs."""
    stripe_evidence = {}
    for field, text in evidence.items():
        if field not in FILE_FIELDS:
            stripe_evidence[field] = text
            continue
        receipt = Receipt.objects.filter(payment_id=dispute.payment_id).first() if field == "receipt" else None
        if receipt is not None:
            filename, content = receipt.filename, receipt_pdf(receipt=receipt)
        else:
            filename, content = f"{dispute.stripe_dispute_id}-{field}.pdf", _evidence_pdf(dispute, field, text)
        stripe_evidence[field] = stripe_gateway.evidence_file_upload(
            filename=filename, content=content, content_type="application/pdf"
        )
    return stripe_evidence


def _evidence_pdf(dispute, field, text):
    from weasyprint import HTML  # heavy import (~0.6 s): only where PDFs are made

    payment = dispute.payment
    user = payment.account.user
    with translation.override(EVIDENCE_LANGUAGE):  # for Stripe's reviewers, whoever submits it
        html = render_to_string(
            "billing/dispute_evidence.html",
            {
                "label": str(EVIDENCE_FIELDS[field]),
                "text": text,
                "dispute": dispute,
                "payment": payment,
                "customer": f"{user.get_full_name()} <{user.email}>" if user.get_full_name() else user.email,
                "prepared_on": texts.when(timezone.now()),
                "seller_name": settings.PORTAL_SELLER_NAME,
                "seller_email": settings.PORTAL_SELLER_EMAIL,
            },
        )
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


def _provider_failure(error, *, refused, unanswered):
    if isinstance(error, ProviderUnavailable):
        return DisputeProviderFailed(unanswered, maybe_sent=True)
    reason = str(error).strip()
    return DisputeProviderFailed(
        refused % {"reason": reason if reason.endswith(".") else f"{reason}."}, maybe_sent=False
    )


def _audit_failure(dispute, *, actor, action, error, ip):
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=action,
            target=dispute,
            after={"error": str(error), "maybe_sent": error.maybe_sent},
            ip_address=ip,
        )
