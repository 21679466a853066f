"""Two submits of one console form at the same moment (a double click, two tabs) act once: the
form's one-time key is claimed in the action's transaction, and the second waits for the first and
is told it was done. On PostgreSQL (CI's second leg) this proves the unique insert in a savepoint;
on SQLite, IMMEDIATE transactions serialise the two the same way."""

import secrets
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.notifications import session_record
from billing.errors import ActionAlreadyTaken
from billing.hours_actions import hours_grant, lot_extend, lots_extend_bulk, usage_void
from billing.models import ActionKey, AuditEntry, LedgerEntry, Lot
from billing.tests.builders import credit, make_plan, make_staff, make_student, use
from billing.tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff():
    return make_staff("fiona.finance@example.com")


def twice_at_once(action):
    outcomes, errors = run_at_once(action, 2)
    assert [type(error) for error in errors] == [ActionAlreadyTaken], errors
    return outcomes


def test_two_grants_with_one_key_at_once_give_the_hours_once(staff):
    account = make_student()
    key = secrets.token_urlsafe(18)

    twice_at_once(
        lambda: hours_grant(
            account=account,
            name="Goodwill",
            minutes=120,
            expires_at=timezone.now() + timedelta(days=30),
            reason="Apology",
            actor=staff,
            key=key,
        )
    )

    account.refresh_from_db()
    assert account.balance_minutes == 120
    assert Lot.objects.count() == 1 and ActionKey.objects.count() == 1
    assert AuditEntry.objects.filter(action="hours.grant").count() == 1


def test_two_voids_with_one_key_at_once_give_the_minutes_back_once(staff):
    account = make_student()
    credit(account, 300)
    session = use(account, 60)
    key = secrets.token_urlsafe(18)

    twice_at_once(lambda: usage_void(usage=session, reason="Mistake", actor=staff, key=key, late_allowed=True))

    account.refresh_from_db()
    assert account.balance_minutes == 300
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.VOID).count() == 1


def test_two_voids_of_one_session_with_different_keys_at_once_void_it_once(staff):
    account = make_student()
    credit(account, 300)
    session = use(account, 60)

    outcomes, errors = run_at_once(
        lambda: usage_void(
            usage=session, reason="Mistake", actor=staff, key=secrets.token_urlsafe(18), late_allowed=True
        ),
        2,
    )

    assert len(outcomes) == 1 and "already voided" in str(errors[0])
    account.refresh_from_db()
    assert account.balance_minutes == 300


def test_two_extensions_with_one_key_at_once_audit_once(staff):
    lot = credit(make_student(), 300, days_valid=30)
    new_expiry = timezone.now() + timedelta(days=90)
    key = secrets.token_urlsafe(18)

    twice_at_once(lambda: lot_extend(lot=lot, expires_at=new_expiry, reason="Ill", actor=staff, key=key))

    assert Lot.objects.get(pk=lot.pk).expires_at == new_expiry
    assert AuditEntry.objects.filter(action="lot.extend").count() == 1


def test_two_bulk_extensions_with_one_key_at_once_move_the_lots_once(staff):
    plan = make_plan()
    lots = [credit(account, 300, days_valid=5, plan=plan) for account in (make_student(), make_student())]
    today = timezone.localdate()
    key = secrets.token_urlsafe(18)

    twice_at_once(
        lambda: lots_extend_bulk(
            plan=plan,
            expires_from=today,
            expires_to=today + timedelta(days=10),
            days=30,
            reason="Summer break",
            actor=staff,
            key=key,
            expected_lots=2,
        )
    )

    for lot in lots:
        moved = Lot.objects.get(pk=lot.pk).expires_at
        assert timezone.localtime(moved).date() == timezone.localtime(lot.expires_at).date() + timedelta(days=30)


def test_two_session_forms_with_one_key_at_once_record_once(staff):
    account = make_student()
    credit(account, 300)
    key = secrets.token_urlsafe(18)

    twice_at_once(
        lambda: session_record(
            account=account,
            minutes=50,
            occurred_at=timezone.now(),
            tutor="T",
            subject="S",
            recorded_by=staff,
            key=key,
        )
    )

    account.refresh_from_db()
    assert account.balance_minutes == 250 and account.usages.count() == 1
