"""An account's version: a number that moves, in the same transaction, with anything the student's
pages show (hours, lots, sessions, payments, refunds, disputes, cards, subscriptions, receipts, a
block, billing details, the reminder level).

Every writer of those takes the account's lock first (billing.ledger.account_lock), and taking the
lock moves the version: a lock that ends up changing nothing costs one page render, a change that
forgot to move it would cost a stale page, which is why the lock does it and not each writer. The
portal caches a student's rendered pages under it and answers their live-update polls with it as
the ETag.

Staff pages that show many accounts' rows (the console's payments and overview) cannot name every
version they show: they use the console's version, one token in the cache renewed once any
account's version moves, or a row such a page shows is saved (portal/apps.py connects the models)
or updated in bulk (each such update renews it), as soon as that commits.
"""

import logging
import secrets

from django.core.cache import cache
from django.db import transaction
from django.db.models import F

from billing.models import Account

CONSOLE_VERSION_KEY = "billing:console-version"

logger = logging.getLogger(__name__)


def account_version_bump(*, account_ids):
    """Move the version of these accounts (already locked by the caller, or locked by this update)."""
    Account.objects.filter(pk__in=account_ids).update(version=F("version") + 1)
    console_version_renew()


def console_version():
    """The console's version: a token, made anew when the cache has lost it (every key using it then
    changes); None while the cache cannot be read, when nothing may be kept under it."""
    return version_token(CONSOLE_VERSION_KEY)


def console_version_renew(**_signal):
    """Renew the console's version once the current transaction commits (at once outside one)."""
    version_token_renew(CONSOLE_VERSION_KEY)


def version_token(key):
    """The token held in the cache under `key`, made up when there is none; None when the cache is down."""
    try:
        return cache.get_or_set(key, secrets.token_hex(8), timeout=None)
    except Exception:
        logger.warning("The cache is unavailable: no version token for %s.", key, exc_info=True)
        return None


def version_token_renew(key):
    """Give `key` a new token when the transaction commits: what was kept under the old one is left."""

    def renew():
        try:
            cache.set(key, secrets.token_hex(8), timeout=None)
        except Exception:
            # The old token stays: what is kept under it is used until its time runs out (PAGE_MAX_AGE).
            logger.warning("The cache is unavailable: %s could not be renewed.", key, exc_info=True)

    transaction.on_commit(renew)
