"""Concurrent writers on one account are serialised by the account row lock: hours never overdraw.

On PostgreSQL (CI's second leg) this proves the select_for_update() row lock; on SQLite, which has
no row locks, it proves that IMMEDIATE transactions serialise writers the same way."""

import threading

import pytest
from django.db import connection

from billing.errors import InsufficientHours
from billing.models import LedgerEntry, Usage
from billing.tests.builders import credit, make_student, use


@pytest.mark.django_db(transaction=True)
def test_concurrent_sessions_never_take_the_balance_below_zero():
    account = make_student()
    credit(account, 300)
    workers = 6
    start = threading.Barrier(workers)
    outcomes = []

    def record_a_session():
        try:
            start.wait()
            use(account, 60)
            outcomes.append("recorded")
        except InsufficientHours:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=record_a_session) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    account.refresh_from_db()
    assert sorted(outcomes) == ["recorded"] * 5 + ["refused"]
    assert account.balance_minutes == 0
    assert Usage.objects.count() == 5
    assert sorted(LedgerEntry.objects.values_list("balance_after", flat=True)) == [0, 60, 120, 180, 240, 300]
