"""`manage.py ledger_check` finds any account whose cached balance drifted from its ledger."""

import secrets
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing import ledger
from billing.hours_actions import hours_grant, lot_extend, usage_void
from billing.models import Account, LedgerEntry
from billing.tests.builders import credit, make_staff, make_student, use

pytestmark = pytest.mark.django_db


def test_it_passes_when_every_account_balances(capsys):
    account = make_student()
    credit(account, 600)
    use(account, 90)
    make_student()

    call_command("ledger_check")

    assert "All accounts balance." in capsys.readouterr().out


def test_it_names_an_account_whose_cached_balance_drifted(capsys):
    account = make_student("drifted@example.com")
    credit(account, 600)
    make_student("fine@example.com")
    Account.objects.filter(pk=account.pk).update(balance_minutes=700)

    with pytest.raises(CommandError, match="1 account"):
        call_command("ledger_check")

    err = capsys.readouterr().err
    assert "drifted@example.com: cached 700 min, ledger 600 min, lots 600 min" in err
    assert "fine@example.com" not in err


def test_it_passes_after_staff_grant_reopen_and_void(capsys):
    staff = make_staff("fiona.finance@example.com")
    account = make_student()
    lot = credit(account, 300, days_valid=30, bought_days_ago=32)
    ledger.lots_expire_due()
    extend_to = timezone.now() + timedelta(days=10)
    lot_extend(lot=lot, expires_at=extend_to, reason="Reopened", actor=staff, key=secrets.token_urlsafe(18))
    hours_grant(
        account=account, name="Goodwill", minutes=60, expires_at=extend_to, reason="Sorry", actor=staff, key="grant-1"
    )
    usage_void(usage=use(account, 90), reason="Mistake", actor=staff, key="void-1", late_allowed=True)
    kinds = set(account.ledger_entries.values_list("kind", flat=True))
    assert {LedgerEntry.Kind.GRANT, LedgerEntry.Kind.EXPIRY_REVERSAL, LedgerEntry.Kind.VOID} <= kinds

    call_command("ledger_check")

    assert "All accounts balance." in capsys.readouterr().out
