"""Blocking an account from buying hours (its hours stay usable): what confirming fraud usually
does, and what Finance may also do, or undo, from a student's page. Each change is audited."""

from django.db import transaction
from django.utils import timezone

from billing import background, ledger
from billing.audit import audit_reason, audit_record
from billing.errors import AccountErased
from billing.models import Account


def account_block(*, account, actor, reason, ip_address=None):
    """Stop the account from buying hours (its hours stay usable). Blocking a blocked account changes
    nothing and records nothing."""
    return _block_set(account, blocked=True, actor=actor, reason=reason, ip_address=ip_address)


def account_unblock(*, account, actor, reason, ip_address=None):
    """Let a blocked account buy again. Unblocking an account that is not blocked records nothing."""
    return _block_set(account, blocked=False, actor=actor, reason=reason, ip_address=ip_address)


def _block_set(account, *, blocked, actor, reason, ip_address):
    reason = audit_reason(reason)
    with transaction.atomic():
        account = ledger.account_lock(account_id=account.pk)
        if (account.blocked_at is not None) == blocked:
            return account
        if not blocked and account.user.erased_at:
            # Its block is what keeps an erased account from ever being charged (billing.privacy).
            raise AccountErased
        before = _block_state(account)
        account.blocked_at = timezone.now() if blocked else None
        account.blocked_reason = reason[: Account._meta.get_field("blocked_reason").max_length] if blocked else ""
        account.save(update_fields=["blocked_at", "blocked_reason"])
        audit_record(
            actor=actor,
            action="account.block" if blocked else "account.unblock",
            target=account,
            reason=reason,
            before=before,
            after=_block_state(account),
            ip_address=ip_address,
        )
        if blocked:
            # A payment waiting for 3-D Secure could still be completed: cancelled at Stripe once the
            # block is committed (never a Stripe call inside this transaction). A queue that is down
            # is logged; reconcile_payments cancels what a blocked account still has waiting.
            background.cancel_blocked_payments.on_commit(account.pk, robust=True)
    return account


def _block_state(account):
    blocked_at = account.blocked_at.isoformat() if account.blocked_at else None
    return {"blocked_at": blocked_at, "blocked_reason": account.blocked_reason}
