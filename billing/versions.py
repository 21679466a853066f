"""An account's version: a number that moves, in the same transaction, with anything the student's
pages show (hours, lots, sessions, payments, refunds, disputes, cards, subscriptions, receipts, a
block, billing details, the reminder level).

Every writer of those takes the account's lock first (billing.ledger.account_lock), and taking the
lock moves the version: a lock that ends up changing nothing costs one page render, a change that
forgot to move it would cost a stale page, which is why the lock does it and not each writer. The
portal caches a student's rendered pages under it and answers their live-update polls with it as
the ETag.
"""

from django.db.models import F

from billing.models import Account


def account_version_bump(*, account_ids):
    """Move the version of these accounts (already locked by the caller, or locked by this update)."""
    Account.objects.filter(pk__in=account_ids).update(version=F("version") + 1)
