"""The audit log: every console action is written here, in the same transaction as its effect."""

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from billing.errors import ActionAlreadyTaken, LedgerError, ReasonRequired
from billing.models import ActionKey, AuditEntry


def audit_record(*, actor, action, target, reason="", before=None, after=None, ip_address=None):
    """Write one audit entry for `action` (e.g. "refund.create") by `actor` on `target`.

    `target` is any model instance; the account and payment it concerns are found from it, so the
    entry shows on the student's and the payment's console pages.
    """
    return _write(
        actor=actor,
        action=action,
        target_type=target._meta.model_name,
        target_id=str(target.pk),
        target_label=str(target),
        account_id=_account_id(target),
        payment_id=_payment_id(target),
        reason=reason,
        before=before,
        after=after,
        ip_address=ip_address,
    )


def audit_reason(text, message=None):
    """The reason (or note) an audited staff action must give, trimmed; ReasonRequired if empty,
    saying `message` (already translated by the caller) or "Please give a reason."."""
    text = (text or "").strip()
    if not text:
        raise ReasonRequired(message or _("Please give a reason."))
    return text


def action_key_claim(*, key, action, actor):
    """Take a console form's one-time key for `action`, in the caller's transaction: the action is
    taken once per key. A key taken before (a double submit), or by a request running at the same
    moment, raises ActionAlreadyTaken, and the caller's transaction changes nothing.

    The insert runs in a savepoint so that the unique violation leaves the caller's transaction
    usable on PostgreSQL; there a second request waits on the first one's uncommitted key and fails
    once it commits (or takes the key if the first rolled back).
    """
    if not transaction.get_connection().in_atomic_block:
        raise LedgerError("A one-time key is claimed only inside the action's transaction (transaction.atomic).")
    key = (key or "").strip()
    if not key or len(key) > ActionKey._meta.get_field("key").max_length:
        raise LedgerError(_("This form has expired. Please open it again."))
    try:
        with transaction.atomic():
            ActionKey.objects.create(key=key, action=action, actor=actor)
    except IntegrityError:
        raise ActionAlreadyTaken() from None


def audit_record_bulk(*, actor, action, target_type, label, reason="", after=None, ip_address=None):
    """One entry for an action on many objects at once (e.g. "retry all failed events")."""
    return _write(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id="*",
        target_label=label,
        account_id=None,
        payment_id=None,
        reason=reason,
        before=None,
        after=after,
        ip_address=ip_address,
    )


def _write(
    *, actor, action, target_type, target_id, target_label, account_id, payment_id, reason, before, after, ip_address
):
    return AuditEntry.objects.create(
        actor=actor,
        actor_email=actor.email,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label[:200],
        account_id=account_id,
        payment_id=payment_id,
        before=before or {},
        after=after or {},
        reason=reason,
        ip_address=ip_address,
    )


def _account_id(target):
    if target._meta.model_name == "account":
        return target.pk
    if hasattr(target, "account_id"):
        return target.account_id
    payment = getattr(target, "payment", None)
    return payment.account_id if payment is not None else None


def _payment_id(target):
    if target._meta.model_name == "payment":
        return target.pk
    return getattr(target, "payment_id", None)
