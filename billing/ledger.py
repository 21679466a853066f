"""The hours ledger: the only code that changes a student's hours.

Every operation runs in one transaction, locks the account row first (so operations on one
account are serialised and a lot's remainder is read after the lock), writes one LedgerEntry per
lot it touches, and keeps `Account.balance_minutes` equal to the sum of the account's entries and
to the sum of its lots' remainders.
"""

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import background
from billing.audit import action_key_claim, audit_record
from billing.errors import InsufficientHours, LedgerError, LotExpired
from billing.formatting import date_text
from billing.models import Account, LedgerEntry, Lot, Usage
from billing.versions import account_version_bump

logger = logging.getLogger(__name__)

ACCOUNTS_PER_EXPIRY_BATCH = 200


def account_open(*, user):
    """The user's hours account, created on first use."""
    account, _created = Account.objects.get_or_create(user=user)
    return account


def lot_credit(
    *,
    account,
    name,
    minutes,
    expires_at,
    plan=None,
    price_cents=0,
    currency=None,
    purchased_at=None,
    reason="",
    actor=None,
):
    """Add a new lot of `minutes` to the account and book its credit."""
    return _lot_open(
        account=account,
        name=name,
        minutes=minutes,
        expires_at=expires_at,
        source=Lot.Source.PURCHASE,
        kind=LedgerEntry.Kind.CREDIT,
        plan=plan,
        price_cents=price_cents,
        currency=currency,
        purchased_at=purchased_at,
        reason=reason,
        actor=actor,
    )


def lot_grant(*, account, name, minutes, expires_at, reason, actor):
    """A complimentary lot from staff: no price, no payment, no receipt; booked as a grant so that
    it is counted apart from sales."""
    return _lot_open(
        account=account,
        name=name,
        minutes=minutes,
        expires_at=expires_at,
        source=Lot.Source.GRANT,
        kind=LedgerEntry.Kind.GRANT,
        reason=reason,
        actor=actor,
    )


def _lot_open(
    *,
    account,
    name,
    minutes,
    expires_at,
    source,
    kind,
    plan=None,
    price_cents=0,
    currency=None,
    purchased_at=None,
    reason="",
    actor=None,
    usage=None,
):
    purchased_at = purchased_at or timezone.now()
    if minutes <= 0:
        raise LedgerError("A lot must hold a positive number of minutes.")
    if expires_at <= purchased_at:
        raise LedgerError("A lot must expire after it is bought.")
    with transaction.atomic():
        account = account_lock(account_id=account.pk)
        lot = Lot(
            account=account,
            plan=plan,
            name=name,
            source=source,
            minutes_purchased=minutes,
            minutes_remaining=0,
            price_cents=price_cents,
            purchased_at=purchased_at,
            expires_at=expires_at,
        )
        if currency:
            lot.currency = currency
        lot.save()
        _book(
            account=account,
            lot=lot,
            kind=kind,
            minutes=minutes,
            occurred_at=purchased_at,
            usage=usage,
            reason=reason,
            actor=actor,
        )
    return lot


def usage_record(*, account, minutes, occurred_at, tutor, subject, recorded_by=None):
    """Record a tutoring session and draw its minutes from the soonest-expiring usable lots.

    A session may span lots. Lots usable when the session took place count, so a session
    recorded late still draws on a lot that has since passed its expiry (but was not yet expired
    by the job).
    """
    if minutes <= 0:
        raise LedgerError("A session must last a positive number of minutes.")
    if occurred_at > timezone.now():
        raise LedgerError("A session cannot be recorded before it takes place.")
    with transaction.atomic():
        account = account_lock(account_id=account.pk)
        lots = list(Lot.objects.usable(occurred_at).filter(account=account).order_by("expires_at", "id"))
        available = sum(lot.minutes_remaining for lot in lots)
        if available < minutes:
            raise InsufficientHours(available_minutes=available, requested_minutes=minutes)
        usage = Usage.objects.create(
            account=account,
            minutes=minutes,
            occurred_at=occurred_at,
            tutor=tutor,
            subject=subject,
            recorded_by=recorded_by,
        )
        still_needed = minutes
        for lot in lots:
            drawn = min(lot.minutes_remaining, still_needed)
            _book(
                account=account,
                lot=lot,
                kind=LedgerEntry.Kind.USAGE,
                minutes=-drawn,
                occurred_at=occurred_at,
                usage=usage,
                actor=recorded_by,
            )
            still_needed -= drawn
            if still_needed == 0:
                break
        _balance_fell([account.pk])
    return usage


def usage_reverse(*, usage, reason, actor):
    """Give a voided session's minutes back to the lots it drew on (one VOID entry per lot, tied to
    the session) and mark it voided; it stays in the histories. A lot that has expired since cannot
    take hours back, so its share comes back in a new lot of its own ("... (restored)") that stays
    usable for PORTAL_REOPEN_WINDOW_DAYS, the grace an expired lot gets.

    Returns the VOID entries.
    """
    with transaction.atomic():
        account = account_lock(account_id=Usage.objects.values_list("account_id", flat=True).get(pk=usage.pk))
        usage = Usage.objects.get(pk=usage.pk)
        if usage.voided_at is not None:
            raise LedgerError(_("This session was already voided on %(date)s.") % {"date": date_text(usage.voided_at)})
        now = timezone.now()
        drawn = defaultdict(int)
        for lot_id, minutes in usage.ledger_entries.filter(kind=LedgerEntry.Kind.USAGE).values_list(
            "lot_id", "minutes"
        ):
            drawn[lot_id] -= minutes
        entries = []
        for lot in Lot.objects.filter(pk__in=drawn).order_by("expires_at", "pk"):
            if lot.is_expired(now):
                restored = _lot_open(
                    account=account,
                    name=f"{lot.name} (restored)"[: Lot._meta.get_field("name").max_length],
                    minutes=drawn[lot.pk],
                    expires_at=now + timedelta(days=settings.PORTAL_REOPEN_WINDOW_DAYS),
                    source=Lot.Source.RESTORED,
                    kind=LedgerEntry.Kind.VOID,
                    currency=lot.currency,
                    purchased_at=now,
                    reason=reason,
                    actor=actor,
                    usage=usage,
                )
                entries.append(restored.ledger_entries.get())
                # _lot_open booked on its own copy of the account row: read the balance it left.
                account.refresh_from_db(fields=["balance_minutes"])
            else:
                entries.append(
                    _book(
                        account=account,
                        lot=lot,
                        kind=LedgerEntry.Kind.VOID,
                        minutes=drawn[lot.pk],
                        occurred_at=now,
                        usage=usage,
                        reason=reason,
                        actor=actor,
                    )
                )
        usage.voided_at, usage.voided_by, usage.void_reason = now, actor, reason
        usage.save(update_fields=["voided_at", "voided_by", "void_reason"])
    return entries


def lot_postpone(*, lot, expires_at):
    """Move a lot that is still usable to a later expiry. No minutes move, so no ledger entry (the
    caller audits it). Returns the lot as saved."""
    with transaction.atomic():
        _, lot = lot_lock(lot=lot)
        if lot.is_expired():
            raise LotExpired(lot)
        _expiry_check(lot, expires_at)
        lot.expires_at = expires_at
        lot.save(update_fields=["expires_at"])
    return lot


def lots_postpone(*, lots, days):
    """Move each of `lots` (read under their accounts' locks, which the caller holds) `days` later,
    at the same local wall-clock time, in one update. Only lots still usable move."""
    if not transaction.get_connection().in_atomic_block:
        raise LedgerError("Lots move only inside the transaction that locked their accounts.")
    if days <= 0:
        raise LedgerError(_("An extension must be of at least one day."))
    now = timezone.now()
    for lot in lots:
        if lot.is_expired(now):
            raise LotExpired(lot)
        lot.expires_at = timezone.localtime(lot.expires_at) + timedelta(days=days)
    Lot.objects.bulk_update(lots, ["expires_at"])
    return lots


def _expiry_check(lot, expires_at):
    if expires_at <= timezone.now():
        raise LedgerError(_("The new expiry must be in the future."))
    if expires_at <= lot.expires_at:
        raise LedgerError(
            _("The new expiry must be later than the current one (%(date)s).") % {"date": date_text(lot.expires_at)}
        )


def lot_reopen(*, lot, expires_at, reason, actor):
    """Reopen an expired lot until `expires_at`. The minutes its expiry took come back in an
    EXPIRY_REVERSAL entry (the EXPIRY entry stays: the ledger is append-only), and the lot expires
    again on its new date, with an expiry entry of that date. A lot past its date that the expiry
    job has not reached yet still holds its minutes: it only moves.

    Returns the reversal entry, or None when no minutes had expired.
    """
    if not reason.strip():
        raise LedgerError("A reason is required.")
    with transaction.atomic():
        account, lot = lot_lock(lot=lot)
        now = timezone.now()
        if not lot.is_expired(now):
            raise LedgerError(f"{lot.name} has not expired; extend it instead.")
        _expiry_check(lot, expires_at)
        expiry = None
        if lot.expired_at is not None:
            expiry = LedgerEntry.objects.filter(
                lot=lot, kind=LedgerEntry.Kind.EXPIRY, occurred_at=lot.expires_at
            ).first()
        lot.expires_at, lot.expired_at = expires_at, None
        lot.save(update_fields=["expires_at", "expired_at"])
        if expiry is None:
            return None
        return _book(
            account=account,
            lot=lot,
            kind=LedgerEntry.Kind.EXPIRY_REVERSAL,
            minutes=-expiry.minutes,
            occurred_at=now,
            reason=reason.strip(),
            actor=actor,
        )


def lot_expire(*, lot):
    """Book the expiry of a lot whose time has come. Safe to run twice: the second does nothing.

    Returns the expiry entry, or None when nothing was left to expire.
    """
    current = Lot.objects.get(pk=lot.pk)
    if current.expired_at is None and current.expires_at > timezone.now():
        raise LedgerError(f"{current.name} does not expire until {date_text(current.expires_at)}.")
    entries = _expire_lots({current.account_id: [current.pk]})
    return entries[0] if entries else None


def lots_expire_due():
    """Expire every lot whose expiry has passed, a few hundred accounts per transaction (each under
    its row lock). If a batch fails, its accounts are tried one by one, so one bad account is
    logged and retried on the next run without holding up the others.

    Returns the expiry entries booked (lots that still had hours); safe to run concurrently.
    """
    due = Lot.objects.filter(expired_at__isnull=True, expires_at__lte=timezone.now())
    lots_by_account = defaultdict(list)
    for account_id, lot_id in due.values_list("account_id", "pk"):
        lots_by_account[account_id].append(lot_id)
    account_ids = sorted(lots_by_account)
    entries = []
    for start in range(0, len(account_ids), ACCOUNTS_PER_EXPIRY_BATCH):
        batch = {
            account_id: lots_by_account[account_id]
            for account_id in account_ids[start : start + ACCOUNTS_PER_EXPIRY_BATCH]
        }
        try:
            entries += _expire_lots(batch)
        except Exception:
            for account_id, lot_ids in batch.items():
                try:
                    entries += _expire_lots({account_id: lot_ids})
                except Exception:
                    logger.exception(
                        "Could not expire lots %s of account %s; the next run tries again.", lot_ids, account_id
                    )
    return entries


def _expire_lots(lots_by_account):
    """Book the expiry of the given due lots, locking their accounts (in id order, as every batch
    does, so that two runs never deadlock) and writing all entries at once."""
    now = timezone.now()
    with transaction.atomic():
        accounts = accounts_lock(account_ids=lots_by_account)
        lot_ids = [lot_id for lot_ids in lots_by_account.values() for lot_id in lot_ids]
        lots = list(
            Lot.objects.filter(pk__in=lot_ids, expired_at__isnull=True, expires_at__lte=now).order_by(
                "account_id", "expires_at", "pk"
            )
        )
        entries = []
        for lot in lots:
            account = accounts[lot.account_id]
            lost, lot.minutes_remaining, lot.expired_at = lot.minutes_remaining, 0, now
            if lost:
                account.balance_minutes -= lost
                if account.balance_minutes < 0:
                    raise InsufficientHours(available_minutes=account.balance_minutes + lost, requested_minutes=lost)
                entries.append(
                    LedgerEntry(
                        account=account,
                        lot=lot,
                        kind=LedgerEntry.Kind.EXPIRY,
                        minutes=-lost,
                        balance_after=account.balance_minutes,
                        occurred_at=lot.expires_at,
                    )
                )
        Lot.objects.bulk_update(lots, ["minutes_remaining", "expired_at"])
        LedgerEntry.objects.bulk_create(entries)
        Account.objects.bulk_update(list(accounts.values()), ["balance_minutes"])
        _balance_fell(sorted({entry.account_id for entry in entries}))
    return entries


def lot_expiry(*, purchased_at, validity_days):
    """When a lot bought at `purchased_at` expires: the same local wall-clock time `validity_days`
    calendar days later, so a daylight-saving change never moves the expiry date shown."""
    return timezone.localtime(purchased_at) + timedelta(days=validity_days)


def lot_reverse(*, lot, minutes, reason, actor=None):
    """Take `minutes` back out of a lot (a refund), never more than it has left."""
    if minutes <= 0:
        raise LedgerError("A reversal must remove a positive number of minutes.")
    return _change_lot(lot=lot, kind=LedgerEntry.Kind.REVERSAL, minutes=-minutes, reason=reason, actor=actor)


def lot_adjust(*, lot, minutes, reason, actor=None):
    """A staff correction of a lot's hours, up or down, always with a reason."""
    if minutes == 0:
        raise LedgerError(_("An adjustment must change the hours."))
    return _change_lot(lot=lot, kind=LedgerEntry.Kind.ADJUSTMENT, minutes=minutes, reason=reason, actor=actor)


def lot_adjust_by_staff(*, lot, minutes, reason, actor, ip_address=None, key=None):
    """A correction made in the console: the adjustment and its audit entry, together. With the
    form's one-time `key`, a second submit of the same form changes nothing (ActionAlreadyTaken)."""
    with transaction.atomic():
        if key is not None:
            lot_lock(lot=lot)
            action_key_claim(key=key, action="hours.adjust", actor=actor)
        entry = lot_adjust(lot=lot, minutes=minutes, reason=reason, actor=actor)
        audit_record(
            actor=actor,
            action="hours.adjust",
            target=entry.lot,
            reason=reason,
            before={"minutes_remaining": entry.lot.minutes_remaining - minutes},
            after={"minutes_remaining": entry.lot.minutes_remaining},
            ip_address=ip_address,
        )
    return entry


def lot_hold(*, lot, minutes, reason):
    """Hold hours of a disputed lot while the dispute's funds are withdrawn."""
    return _change_lot(lot=lot, kind=LedgerEntry.Kind.DISPUTE_HOLD, minutes=-minutes, reason=reason, actor=None)


def lot_release(*, lot, minutes, reason):
    """Give back hours held for a dispute that was won or whose funds were reinstated."""
    return _change_lot(lot=lot, kind=LedgerEntry.Kind.DISPUTE_RELEASE, minutes=minutes, reason=reason, actor=None)


def lot_unused_minutes(*, lot):
    """What is left of a lot that could still be taken back (nothing once it has expired)."""
    lot = Lot.objects.get(pk=lot.pk)
    return 0 if lot.is_expired() else lot.minutes_remaining


def _change_lot(*, lot, kind, minutes, reason, actor):
    if not reason.strip():
        raise LedgerError("A reason is required.")
    with transaction.atomic():
        account, lot = lot_lock(lot=lot)
        if lot.is_expired():
            raise LotExpired(lot)
        if lot.minutes_remaining + minutes < 0:
            raise InsufficientHours(available_minutes=lot.minutes_remaining, requested_minutes=-minutes)
        if minutes < 0:
            _balance_fell([account.pk])
        return _book(
            account=account,
            lot=lot,
            kind=kind,
            minutes=minutes,
            occurred_at=timezone.now(),
            reason=reason.strip(),
            actor=actor,
        )


def _balance_fell(account_ids):
    """Once the change commits, automatic top-up looks at these accounts (billing.topups). A queue
    that is down is only logged: the top-up's periodic scan finds them later."""
    if account_ids:
        background.top_up_check.on_commit(account_ids, robust=True)


def account_lock(*, account_id):
    """Lock a student's account row until the transaction ends and return it, read afresh.

    Every writer of an account's hours, payments, cards, refunds, disputes or blocks takes this
    lock first, and only then locks or reads other rows (the payment, the dispute, the lot), so
    that writers of one account queue up in one order and never deadlock. Taking it moves the
    account's version (billing.versions), which the student's cached pages are keyed on. Only
    inside a transaction: outside one, SQLite would ignore the lock silently.
    """
    _lock_check()
    account_version_bump(account_ids=[account_id])
    return Account.objects.select_for_update().get(pk=account_id)


def accounts_lock(*, account_ids):
    """Lock several accounts until the transaction ends, in id order (the order every batch takes,
    so that two batches never deadlock). Returns {account id: account}, read afresh."""
    _lock_check()
    accounts = {
        account.pk: account for account in Account.objects.select_for_update().filter(pk__in=account_ids).order_by("pk")
    }
    # After the rows are locked in id order, so that two batches still never deadlock.
    account_version_bump(account_ids=list(accounts))
    for account in accounts.values():
        account.version += 1
    return accounts


def _lock_check():
    if not transaction.get_connection().in_atomic_block:
        raise LedgerError("The account lock holds only inside a transaction (transaction.atomic).")


def lot_lock(*, lot):
    """Lock the account a lot belongs to (as the database says, not as the caller's object says),
    then read the lot afresh under that lock."""
    account_id = Lot.objects.values_list("account_id", flat=True).get(pk=lot.pk)
    account = account_lock(account_id=account_id)
    return account, Lot.objects.get(pk=lot.pk, account=account)


def _book(*, account, lot, kind, minutes, occurred_at, usage=None, reason="", actor=None):
    """Apply one signed change to a locked account and one of its lots, and write its entry."""
    if lot.account_id != account.pk:
        raise LedgerError("A lot can only change on its own account.")
    lot.minutes_remaining += minutes
    account.balance_minutes += minutes
    if lot.minutes_remaining < 0 or account.balance_minutes < 0:
        raise InsufficientHours(available_minutes=lot.minutes_remaining - minutes, requested_minutes=-minutes)
    lot.save(update_fields=["minutes_remaining"])
    account.save(update_fields=["balance_minutes"])
    return LedgerEntry.objects.create(
        account=account,
        lot=lot,
        kind=kind,
        minutes=minutes,
        balance_after=account.balance_minutes,
        usage=usage,
        reason=reason,
        actor=actor,
        occurred_at=occurred_at,
    )
