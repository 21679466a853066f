"""`manage.py ledger_check` finds any account whose cached balance drifted from its ledger."""

import pytest
from django.core.management import CommandError, call_command

from billing.models import Account
from billing.tests.builders import credit, make_student, use

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
