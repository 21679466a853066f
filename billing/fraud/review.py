"""What staff do with a fraud flag: clear it as a false alarm, confirm it (blocking the account and
refunding the payment if asked), or add a note. Each is audited."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import ledger, refunds
from billing.audit import audit_reason, audit_record
from billing.errors import FraudFlagRefused
from billing.fraud.blocks import account_block
from billing.models import FraudFlag


def fraud_flag_clear(*, flag, actor, reason, ip_address=None):
    """Close a flag as a false alarm."""
    with transaction.atomic():
        flag = _open_flag_locked(flag)
        _resolve(flag, status=FraudFlag.Status.CLEARED, actor=actor)
        audit_record(
            actor=actor,
            action="fraud_flag.clear",
            target=flag,
            reason=(reason or "").strip(),
            before={"status": FraudFlag.Status.OPEN},
            after={"status": flag.status},
            ip_address=ip_address,
        )
    return flag


def fraud_flag_confirm(*, flag, actor, reason, block=True, refund=False, ip_address=None):
    """Close a flag as fraud and, unless told otherwise, block the account from buying. With
    `refund`, the flagged payment is then refunded in full with its unused hours taken back; a
    payment that cannot be refunded is refused before anything changes."""
    reason = audit_reason(reason)
    if refund:
        _refund_possible(flag)
    with transaction.atomic():
        account = ledger.account_lock(account_id=flag.account_id)  # account first, as everywhere
        flag = _open_flag_locked(flag)
        _resolve(flag, status=FraudFlag.Status.CONFIRMED, actor=actor)
        audit_record(
            actor=actor,
            action="fraud_flag.confirm",
            target=flag,
            reason=reason,
            before={"status": FraudFlag.Status.OPEN},
            after={"status": flag.status, "block": block},
            ip_address=ip_address,
        )
        if block:
            account_block(account=account, actor=actor, reason=reason, ip_address=ip_address)
    if refund:
        limits = refunds.refund_defaults(payment=flag.payment)
        refunds.refund_issue(
            payment=flag.payment,
            amount_cents=limits.refundable_cents,
            minutes=limits.default_minutes,
            reason=f"Fraud confirmed: {reason}"[:300],
            actor=actor,
            ip_address=ip_address,
        )
    return flag


def _refund_possible(flag):
    payment = flag.payment
    if payment is None or payment.status != payment.Status.SUCCEEDED:
        raise refunds.RefundRefused(
            _("This flag's payment was not paid, so there is nothing to refund; nothing was changed.")
        )
    if refunds.refund_defaults(payment=payment).refundable_cents <= 0:
        raise refunds.RefundRefused(_("This flag's payment has been refunded in full already; nothing was changed."))


def fraud_flag_note(*, flag, actor, note, ip_address=None):
    """Add a note to a flag, open or closed (an audit entry: a later call, a chargeback that
    followed); the flag itself does not change."""
    note = audit_reason(note, message=_("Please write a note."))
    with transaction.atomic():
        return audit_record(actor=actor, action="fraud_flag.note", target=flag, reason=note, ip_address=ip_address)


def _open_flag_locked(flag):
    flag = FraudFlag.objects.select_for_update().get(pk=flag.pk)
    if flag.status != FraudFlag.Status.OPEN:
        raise FraudFlagRefused(flag)
    return flag


def _resolve(flag, *, status, actor):
    flag.status = status
    flag.resolved_at = timezone.now()
    flag.resolved_by = actor
    flag.save(update_fields=["status", "resolved_at", "resolved_by", "updated_at"])
