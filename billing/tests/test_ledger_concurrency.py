"""Concurrent writers on one account are serialised by the account row lock: hours never overdraw.

On PostgreSQL (CI's second leg) this proves the select_for_update() row lock; on SQLite, which has
no row locks, it proves that IMMEDIATE transactions serialise writers the same way."""

import pytest

from billing.errors import InsufficientHours
from billing.models import LedgerEntry, Usage
from billing.tests.builders import credit, make_student, use
from billing.tests.concurrency import run_at_once


@pytest.mark.django_db(transaction=True)
def test_concurrent_sessions_never_take_the_balance_below_zero():
    account = make_student()
    credit(account, 300)

    def record_a_session():
        use(account, 60)
        return "recorded"

    outcomes, errors = run_at_once(record_a_session, 6)

    account.refresh_from_db()
    assert outcomes == ["recorded"] * 5
    assert [type(error) for error in errors] == [InsufficientHours]
    assert account.balance_minutes == 0
    assert Usage.objects.count() == 5
    assert sorted(LedgerEntry.objects.values_list("balance_after", flat=True)) == [0, 60, 120, 180, 240, 300]
