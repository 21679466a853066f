"""Staff actions on a student's hours from the console: grant hours, extend or reopen lots (one, all
of a student's, or in bulk by plan and expiry dates), and void a recorded session.

Each action runs in one transaction: the account lock first (in bulk: every account concerned, in
id order), then the form's one-time key (so a double submit, or two at once, acts once and says
so), then the checks against the state read under the lock, the ledger's own functions for every
change, and one audit entry per account with actor, reason, before/after and ip address. A refusal
raises a BillingError whose message the form shows; nothing changes.

Once committed, the moved lots' expiry alerts are resolved (billing.background.lot_alerts_refresh):
an alert speaks of one expiry date, and a lot that nears its new date is alerted again.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing import background, ledger
from billing.audit import action_key_claim, audit_reason, audit_record
from billing.errors import HoursActionRefused, VoidTooLate
from billing.models import Lot, Payment

# Support may void a session this long after it was recorded (a mistake noticed the same day);
# Finance at any time.
SUPPORT_VOID_WINDOW = timedelta(hours=24)
MAX_EXTENSION_DAYS = 3650


@dataclass(frozen=True)
class ExtendPreview:
    """What a bulk extension selects: how many lots, their unused minutes, and how many students."""

    lots: int
    minutes: int
    accounts: int


def reopen_window():
    return timedelta(days=settings.PORTAL_REOPEN_WINDOW_DAYS)


def lot_reopenable(lot, *, now=None):
    """Whether an expired lot can still be reopened: its expiry lies within the reopening window.
    (The console shows Extend, Reopen or neither on each lot row from this.)"""
    now = now or timezone.now()
    return lot.is_expired(now) and lot.expires_at > now - reopen_window()


def hours_grant(*, account, name, minutes, expires_at, reason, actor, key, ip_address=None):
    """Give a student a complimentary lot: no price, no payment, no receipt, a GRANT entry.

    `expires_at` is a datetime, or a date: the lot is then usable through that local day.
    """
    reason = audit_reason(reason)
    name = (name or "").strip()
    if not name:
        raise HoursActionRefused(_("Please give the granted hours a name."))
    if minutes <= 0:
        raise HoursActionRefused(_("Please grant a positive number of minutes."))
    expires_at = _expiry(expires_at)
    if expires_at <= timezone.now():
        raise HoursActionRefused(_("The expiry must be in the future."))
    with transaction.atomic():
        account = ledger.account_lock(account_id=account.pk)
        action_key_claim(key=key, action="hours.grant", actor=actor)
        before = account.balance_minutes
        lot = ledger.lot_grant(
            account=account, name=name, minutes=minutes, expires_at=expires_at, reason=reason, actor=actor
        )
        audit_record(
            actor=actor,
            action="hours.grant",
            target=lot,
            reason=reason,
            before={"balance_minutes": before},
            after={
                "balance_minutes": before + minutes,
                "name": name,
                "minutes": minutes,
                "expires_at": lot.expires_at.isoformat(),
            },
            ip_address=ip_address,
        )
    return lot


def lot_extend(*, lot, expires_at, reason, actor, key, ip_address=None):
    """Move one lot to a later expiry. A usable lot just moves. An expired one is reopened if it
    expired within PORTAL_REOPEN_WINDOW_DAYS: the minutes its expiry took come back through the
    ledger (an EXPIRY_REVERSAL entry). `expires_at` is a datetime, or a date (usable through it).

    A lot whose purchase was refunded or disputed after it expired is not reopened: the refund or
    hold found no hours to take back then, and reopening would hand them back to the student.
    """
    reason = audit_reason(reason)
    expires_at = _expiry(expires_at)
    with transaction.atomic():
        _, lot = ledger.lot_lock(lot=lot)
        action_key_claim(key=key, action="lot.extend", actor=actor)
        before = _lot_state(lot)
        now = timezone.now()
        if lot.is_expired(now):
            _reopen_check(lot, now)
            ledger.lot_reopen(lot=lot, expires_at=expires_at, reason=reason, actor=actor)
            action = "lot.reopen"
        else:
            ledger.lot_postpone(lot=lot, expires_at=expires_at)
            action = "lot.extend"
        lot.refresh_from_db()
        audit_record(
            actor=actor,
            action=action,
            target=lot,
            reason=reason,
            before=before,
            after=_lot_state(lot),
            ip_address=ip_address,
        )
        background.lot_alerts_refresh.on_commit([lot.pk], robust=True)
    return lot


def account_lots_extend(*, account, days, reason, actor, key, ip_address=None):
    """Move every usable lot of a student `days` later (1 to MAX_EXTENSION_DAYS). Returns the lots."""
    reason = audit_reason(reason)
    _days_check(days)
    with transaction.atomic():
        account = ledger.account_lock(account_id=account.pk)
        action_key_claim(key=key, action="lots.extend", actor=actor)
        lots = list(Lot.objects.usable(timezone.now()).filter(account=account).order_by("expires_at", "pk"))
        if not lots:
            raise HoursActionRefused(_("This student has no usable lots to extend."))
        _lots_move(account, lots, days=days, reason=reason, actor=actor, ip_address=ip_address)
    return lots


def lots_extend_preview(*, plan, expires_from, expires_to):
    """The lots a bulk extension would move: usable lots of `plan` whose expiry falls between the two
    local dates (both included). Expired lots are left out: reopening is a decision per lot, with
    its refund check, made on the student's page."""
    totals = _bulk_selection(plan, expires_from, expires_to).aggregate(
        lots=Count("pk"), minutes=Sum("minutes_remaining"), accounts=Count("account", distinct=True)
    )
    return ExtendPreview(lots=totals["lots"], minutes=totals["minutes"] or 0, accounts=totals["accounts"])


def lots_extend_bulk(*, plan, expires_from, expires_to, days, reason, actor, key, expected_lots, ip_address=None):
    """Move the lots of `lots_extend_preview` `days` later, if the selection still holds the
    `expected_lots` the preview showed (otherwise refuse: it changed since). One audit entry per
    student. Returns what was moved, as a preview."""
    reason = audit_reason(reason)
    _days_check(days)
    with transaction.atomic():
        # The key first: its row is no account's, and accounts are locked below in id order.
        action_key_claim(key=key, action="lots.extend_bulk", actor=actor)
        selection = _bulk_selection(plan, expires_from, expires_to)
        accounts = ledger.accounts_lock(account_ids=sorted(set(selection.values_list("account_id", flat=True))))
        # Read again under the locks: a lot used up or expired meanwhile has left the selection.
        lots = list(selection.order_by("account_id", "expires_at", "pk"))
        if len(lots) != expected_lots:
            # The English reads "lots" whatever the count; a language with plural forms chooses.
            raise HoursActionRefused(
                ngettext(
                    "The selection changed since the preview: it now holds %(lots)s lots, not %(expected)s. "
                    "Please check the preview again.",
                    "The selection changed since the preview: it now holds %(lots)s lots, not %(expected)s. "
                    "Please check the preview again.",
                    len(lots),
                )
                % {"lots": len(lots), "expected": expected_lots}
            )
        preview = ExtendPreview(
            lots=len(lots),
            minutes=sum(lot.minutes_remaining for lot in lots),
            accounts=len({lot.account_id for lot in lots}),
        )
        by_account = {}
        for lot in lots:
            by_account.setdefault(lot.account_id, []).append(lot)
        for account_id, account_lots in by_account.items():
            _lots_move(accounts[account_id], account_lots, days=days, reason=reason, actor=actor, ip_address=ip_address)
    return preview


def usage_void(*, usage, reason, actor, key, late_allowed, ip_address=None):
    """Void a session recorded by mistake: its minutes go back to the lots it drew on (VOID entries),
    into a new lot for a lot expired since; it stays in the histories, marked voided with the reason.
    Without `late_allowed` (Support) a session recorded more than SUPPORT_VOID_WINDOW ago raises
    VoidTooLate."""
    reason = audit_reason(reason)
    if not late_allowed and usage.recorded_at < timezone.now() - SUPPORT_VOID_WINDOW:
        raise VoidTooLate()
    with transaction.atomic():
        account = ledger.account_lock(account_id=usage.account_id)
        action_key_claim(key=key, action="session.void", actor=actor)
        before = account.balance_minutes
        entries = ledger.usage_reverse(usage=usage, reason=reason, actor=actor)
        usage.refresh_from_db()
        audit_record(
            actor=actor,
            action="session.void",
            target=usage,
            reason=reason,
            before={"voided": False, "balance_minutes": before},
            after={
                "voided": True,
                "balance_minutes": before + usage.minutes,
                "returned": [{"lot": entry.lot_id, "minutes": entry.minutes} for entry in entries],
            },
            ip_address=ip_address,
        )
    return usage


def _expiry(value):
    """A form's expiry: a datetime as it is; a date means usable through that local day."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return timezone.make_aware(datetime.combine(value, time.max))
    raise HoursActionRefused(_("Please give the expiry as a date."))


def _days_check(days):
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        raise HoursActionRefused(_("Please extend by 1 to %(max)s days.") % {"max": MAX_EXTENSION_DAYS})


def _reopen_check(lot, now):
    if not lot_reopenable(lot, now=now):
        raise HoursActionRefused(
            _("%(lot)s expired more than %(days)s days ago and can no longer be reopened. Grant hours instead.")
            % {"lot": lot.name, "days": settings.PORTAL_REOPEN_WINDOW_DAYS}
        )
    payment = Payment.objects.filter(lot=lot).first()
    if payment is not None and lot.expired_at is not None:
        refunded = payment.refunds.filter(created_at__gte=lot.expired_at).exists()
        disputed = payment.disputes.filter(created_at__gte=lot.expired_at).exists()
        if refunded or disputed:
            raise HoursActionRefused(
                _(
                    "%(lot)s was refunded or disputed after it expired, so it cannot be reopened. "
                    "Grant hours instead if the student should have some."
                )
                % {"lot": lot.name}
            )


def _lot_state(lot):
    return {
        "expires_at": lot.expires_at.isoformat(),
        "expired_at": lot.expired_at.isoformat() if lot.expired_at else None,
        "minutes_remaining": lot.minutes_remaining,
    }


def _lots_move(account, lots, *, days, reason, actor, ip_address):
    """Move the lots of one locked account `days` later; one audit entry for the account."""
    before = {str(lot.pk): lot.expires_at.isoformat() for lot in lots}
    ledger.lots_postpone(lots=lots, days=days)
    audit_record(
        actor=actor,
        action="lots.extend",
        target=account,
        reason=reason,
        before={"expires_at": before, "days": days},
        after={"expires_at": {str(lot.pk): lot.expires_at.isoformat() for lot in lots}},
        ip_address=ip_address,
    )
    background.lot_alerts_refresh.on_commit([lot.pk for lot in lots], robust=True)


def _bulk_selection(plan, expires_from, expires_to):
    if expires_from > expires_to:
        raise HoursActionRefused(_("The first expiry date must not be after the last one."))
    start = timezone.make_aware(datetime.combine(expires_from, time.min))
    end = timezone.make_aware(datetime.combine(expires_to + timedelta(days=1), time.min))
    return Lot.objects.usable(timezone.now()).filter(plan=plan, expires_at__gte=start, expires_at__lt=end)
