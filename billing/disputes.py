"""Disputes (chargebacks): while a dispute's funds are withdrawn the lot's unused hours are held;
a won dispute or reinstated funds releases them, a lost one removes them for good.

Stripe delivers dispute events in any order, so each event is applied by comparing the state the
dispute should be in (from the dispute object and the event type) with what we already did.

Staff answer a dispute from the console: a draft of evidence prefilled from our records, submitted
to Stripe once, or the dispute accepted (closed as lost).
"""

import contextlib
from datetime import UTC, datetime

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing import ledger, stripe_gateway
from billing.audit import audit_record
from billing.errors import BillingError, LotExpired, ProviderRequestInvalid, ProviderUnavailable
from billing.formatting import duration_text, hours_text, money_text
from billing.models import Account, Dispute, LedgerEntry, Payment, Receipt, share_of_minutes
from billing.receipts import receipt_pdf

CLOSED_STATUSES = {"won", "lost", "warning_closed"}


def dispute_record(*, payment, dispute_object, event_type):
    """Create or update the Dispute for a Stripe dispute object and hold, release or remove hours."""
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=payment.account_id)
        payment = Payment.objects.select_related("lot").get(pk=payment.pk)
        dispute, _ = Dispute.objects.select_for_update().get_or_create(
            stripe_dispute_id=dispute_object["id"],
            defaults={
                "payment": payment,
                "amount_cents": dispute_object["amount"],
                "currency": dispute_object["currency"].upper(),
                "status": dispute_object["status"],
            },
        )
        if dispute.closed:
            return dispute  # a closed dispute is final: late events change nothing
        dispute.amount_cents = dispute_object["amount"]
        dispute.status = dispute_object["status"]
        dispute.reason = dispute_object.get("reason") or ""
        dispute.evidence_due_by = _evidence_due_by(dispute_object)
        reinstated = event_type == "charge.dispute.funds_reinstated" or dispute.status == "won"
        if not reinstated and (event_type == "charge.dispute.funds_withdrawn" or _funds_withdrawn(dispute_object)):
            dispute.funds_withdrawn = True
        if reinstated:
            _release(dispute, payment)
            dispute.funds_withdrawn = False  # a later update must not hold the hours again
            dispute.minutes_short = 0
        elif dispute.status == "lost":
            _hold(dispute, payment)  # whatever is not held yet goes now; held hours stay gone
        elif dispute.funds_withdrawn:
            _hold(dispute, payment)
        dispute.closed = dispute.status in CLOSED_STATUSES
        dispute.save()
    return dispute


def _hold(dispute, payment):
    if dispute.minutes_held or dispute.minutes_short or payment.lot is None:
        return
    due = share_of_minutes(payment.minutes, part_cents=dispute.amount_cents, whole_cents=payment.amount_cents)
    held = min(due, ledger.lot_unused_minutes(lot=payment.lot))
    if held:
        ledger.lot_hold(lot=payment.lot, minutes=held, reason=f"Dispute {dispute.stripe_dispute_id}")
    dispute.minutes_held = held
    dispute.minutes_short = due - held


def _release(dispute, payment):
    if not dispute.minutes_held:
        return
    with contextlib.suppress(LotExpired):  # expired while held: the hours would have expired anyway
        ledger.lot_release(lot=payment.lot, minutes=dispute.minutes_held, reason=f"Dispute {dispute.stripe_dispute_id}")
    dispute.minutes_held = 0


def _funds_withdrawn(dispute_object):
    transactions = dispute_object.get("balance_transactions") or []
    return sum(entry.get("amount", 0) for entry in transactions if isinstance(entry, dict)) < 0


def _evidence_due_by(dispute_object):
    due = (dispute_object.get("evidence_details") or {}).get("due_by")
    return datetime.fromtimestamp(due, tz=UTC) if due else None


# Evidence: Stripe's field names, in the order the console form shows them.
EVIDENCE_FIELDS = {
    "product_description": "Product description",
    "customer_communication": "Customer communication",
    "service_date": "Service date",
    "service_documentation": "Service documentation",
    "receipt": "Receipt",
    "access_activity_log": "Access activity log",
    "uncategorized_text": "Other information",
}
# Stripe closes (accepts) a dispute only while it waits for our response.
ACCEPTABLE_STATUSES = {"needs_response", "warning_needs_response"}
# Stripe takes these as uploaded files: our text goes as a small PDF, the receipt as its own PDF.
FILE_FIELDS = {"customer_communication", "service_documentation", "receipt"}
# Stripe caps each text field at 20,000 characters and all of them together at 150,000; our four
# text fields, capped, stay under both.
EVIDENCE_MAX_CHARS = 20_000
# Statuses in which Stripe is already reviewing evidence (submitted here or in its Dashboard).
REVIEW_STATUSES = {"under_review", "warning_under_review"}
RECENT_ACTIVITY = 20


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
    sessions = _lot_sessions(payment.lot)
    prefill = {
        "product_description": _product_description(payment),
        "customer_communication": _customer_communication(payment, receipt, messages),
        "service_date": _service_date(payment, sessions),
        "service_documentation": _service_documentation(payment, sessions),
        "receipt": receipt.number if receipt else "",
        "access_activity_log": _access_activity_log(payment),
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
        raise DisputeRefused("There is no evidence to submit: fill in at least one field.")
    try:
        stripe_evidence = _stripe_evidence(dispute, sent)
        dispute_object = stripe_gateway.dispute_evidence_submit(
            dispute_id=dispute.stripe_dispute_id, evidence=stripe_evidence, submit=True
        )
    except (ProviderRequestInvalid, ProviderUnavailable) as error:
        failure = _provider_failure(
            error,
            refused="Stripe did not take the evidence: {reason} The draft is saved and was not submitted.",
            unanswered="Stripe did not answer, so the evidence may or may not have reached it. The draft is "
            "saved; check the dispute in the Stripe Dashboard before submitting again.",
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
        raise DisputeRefused(f"This dispute is already closed ({_status_text(dispute.status)}).")
    if dispute.status not in ACCEPTABLE_STATUSES:
        raise DisputeRefused(
            f"This dispute is {_status_text(dispute.status)}: "
            "Stripe takes an acceptance only while the dispute needs a response."
        )
    if not reason:
        raise DisputeRefused("Give a reason for accepting the dispute; it goes into the audit log.")
    try:
        dispute_object = stripe_gateway.dispute_close(dispute.stripe_dispute_id)
    except (ProviderRequestInvalid, ProviderUnavailable) as error:
        failure = _provider_failure(
            error,
            refused="Stripe did not close the dispute: {reason} It stays open.",
            unanswered="Stripe did not answer, so the dispute may or may not be closed. Check it in the Stripe "
            "Dashboard before trying again.",
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
    Account.objects.select_for_update().get(pk=dispute.payment.account_id)
    return Dispute.objects.select_for_update().get(pk=dispute.pk)


def _refuse_unless_evidence_open(dispute):
    if dispute.accepted_at:
        raise DisputeRefused(f"This dispute was accepted on {_when(dispute.accepted_at)}; its evidence is final.")
    if dispute.closed:
        raise DisputeRefused(
            f"This dispute is closed ({_status_text(dispute.status)}); Stripe no longer takes evidence for it."
        )
    if dispute.evidence_submitted_at:
        raise DisputeRefused(
            f"The evidence was submitted on {_when(dispute.evidence_submitted_at)}; Stripe takes one submission."
        )
    if dispute.status in REVIEW_STATUSES:
        raise DisputeRefused("Stripe is already reviewing evidence for this dispute (submitted in its Dashboard).")
    if dispute.evidence_due_by and dispute.evidence_due_by <= timezone.now():
        raise DisputeRefused(f"The evidence was due on {_when(dispute.evidence_due_by)}; Stripe no longer accepts it.")


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
    html = render_to_string(
        "billing/dispute_evidence.html",
        {
            "label": EVIDENCE_FIELDS[field],
            "text": text,
            "dispute": dispute,
            "payment": payment,
            "customer": f"{user.get_full_name()} <{user.email}>" if user.get_full_name() else user.email,
            "prepared_on": _when(timezone.now()),
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
        refused.format(reason=reason if reason.endswith(".") else f"{reason}."), maybe_sent=False
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


def _lot_sessions(lot):
    """(session, minutes drawn from this lot) for each session that used the lot, oldest first."""
    if lot is None:
        return []
    entries = (
        LedgerEntry.objects.filter(lot=lot, kind=LedgerEntry.Kind.USAGE)
        .select_related("usage")
        .order_by("usage__occurred_at", "id")
    )
    return [(entry.usage, -entry.minutes) for entry in entries]


def _product_description(payment):
    plan = payment.plan
    lines = [
        f"{plan.name}: a prepaid package of {hours_text(payment.minutes)} of tutoring sessions, bought on "
        f"{_day(payment.settled_at or payment.created_at)} for {money_text(payment.amount_cents, payment.currency)}.",
        f"The hours are valid for {payment.validity_days} days"
        + (f" (until {_day(payment.lot.expires_at)})." if payment.lot else "."),
        "Each session the student takes with a tutor draws its length from the package.",
    ]
    if plan.description:
        lines.insert(1, plan.description)
    return "\n".join(lines)


def _service_date(payment, sessions):
    start = f"Hours available from {_day(payment.settled_at or payment.created_at)}"
    if not sessions:
        return f"{start}; no session used yet."
    days = dict.fromkeys(_day(session.occurred_at) for session, _ in sessions)  # each day once, in order
    return f"{start}; sessions on {', '.join(days)}."


def _service_documentation(payment, sessions):
    if not sessions:
        return ""
    lines = [f"Sessions drawn from {payment.lot.name} (bought {_day(payment.lot.purchased_at)}):"]
    for session, drawn in sessions:
        part = f" ({duration_text(drawn)} from this package)" if drawn != session.minutes else ""
        lines.append(
            f"{_when(session.occurred_at)} · {duration_text(session.minutes)}{part} · {session.tutor} · "
            f"{session.subject}"
        )
    used = sum(drawn for _, drawn in sessions)
    lines.append(f"In all {hours_text(used)} of the {hours_text(payment.minutes)} bought were used.")
    return "\n".join(lines)


def _access_activity_log(payment):
    """What we know of the student's use of the portal: the sign-up, their recent sign-ins (time,
    address, browser) and the account's own records."""
    account = payment.account
    user = account.user
    verified = EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()
    lines = [
        f"Account {user.email}, signed up {_when(user.date_joined)}"
        + ("; email address verified." if verified else "."),
        f"Last sign-in: {_when(user.last_login)}." if user.last_login else "Last sign-in: not recorded.",
    ]
    events = [
        (
            sign_in.at,
            f"Signed in from {sign_in.ip_address or 'an unknown address'} ({sign_in.user_agent or 'browser unknown'})",
        )
        for sign_in in user.sign_ins.all()[:RECENT_ACTIVITY]
    ]
    events += [
        (card.created_at, f"Card {card.label} saved")
        for card in account.payment_methods.order_by("-created_at")[:RECENT_ACTIVITY]
    ]
    events += [
        (
            paid.settled_at or paid.created_at,
            f"Paid {money_text(paid.amount_cents, paid.currency)} for {paid.plan.name}"
            + (" (the disputed payment)" if paid.pk == payment.pk else ""),
        )
        for paid in account.payments.filter(status=Payment.Status.SUCCEEDED)
        .select_related("plan")
        .order_by("-created_at")[:RECENT_ACTIVITY]
    ]
    events += [
        (session.occurred_at, f"Session: {session.subject} with {session.tutor}, {duration_text(session.minutes)}")
        for session in account.usages.order_by("-occurred_at")[:RECENT_ACTIVITY]
    ]
    if events:
        lines.append("Recent activity:")
        lines += [f"{_when(at)} · {what}" for at, what in sorted(events, key=lambda event: event[0])]
    return "\n".join(lines)


def _customer_communication(payment, receipt, messages):
    """The messages we sent the student about this payment and the hours it bought."""
    user = payment.account.user
    messages = list(messages)
    if receipt is not None and receipt.emailed_at:
        messages.append((receipt.emailed_at, f"Receipt {receipt.number} emailed with its PDF attached"))
    if not messages:
        return ""
    lines = [f"Messages we sent to {user.email} about this payment:"]
    lines += [f"{_when(at)} · {text}" for at, text in sorted(messages, key=lambda message: message[0])]
    return "\n".join(lines)


def _status_text(status):
    return status.replace("_", " ")


def _day(moment):
    return f"{timezone.localtime(moment):%d %b %Y}"


def _when(moment):
    return f"{timezone.localtime(moment):%d %b %Y, %H:%M %Z}"
