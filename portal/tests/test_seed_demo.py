"""`manage.py seed_demo` builds believable history through the ledger and is safe to run twice."""

from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing.models import (
    Dispute,
    FraudFlag,
    LedgerEntry,
    Lot,
    Payment,
    PaymentMethod,
    Plan,
    Receipt,
    Subscription,
    Usage,
    WebhookEvent,
)
from billing.receipts import receipt_pdf
from billing.selectors import accounts_out_of_balance, balance_summary
from billing.tests.pdfs import pdf_text
from portal.models import User

pytestmark = pytest.mark.django_db


def counts():
    return [model.objects.count() for model in (User, Plan, Lot, Usage, LedgerEntry)]


def test_it_is_idempotent_and_leaves_every_account_balanced(capsys):
    call_command("seed_demo", "--not-production")
    first = counts()
    call_command("seed_demo", "--not-production")

    assert counts() == first
    assert not accounts_out_of_balance().exists()
    out = capsys.readouterr().out
    assert "ana.student@example.com" in out and "staff@example.com" in out


def test_the_rich_student_has_months_of_history_and_hours_expiring_this_week():
    call_command("seed_demo", "--not-production")
    account = User.objects.get(email="ana.student@example.com").account

    summary = balance_summary(account=account)

    assert account.usages.count() >= 20
    assert account.usages.order_by("occurred_at").first().occurred_at < timezone.now() - timedelta(days=120)
    assert summary.next_expiry.expires_at < timezone.now() + timedelta(days=7)
    assert len(summary.expired_lots) == 1
    assert LedgerEntry.objects.filter(account=account, kind="expiry").exists()


def test_the_near_zero_student_is_below_the_low_balance_threshold():
    call_command("seed_demo", "--not-production")
    summary = balance_summary(account=User.objects.get(email="ben.student@example.com").account)
    assert summary.is_low and summary.available_minutes > 0


def test_a_student_reads_the_portal_in_portuguese_on_lisbon_time():
    call_command("seed_demo", "--not-production")
    joao = User.objects.get(email="joao.aluno@example.com")
    assert (joao.language, joao.time_zone) == ("pt-pt", "Europe/Lisbon")
    assert balance_summary(account=joao.account).available_minutes > 0


def test_the_staff_user_is_staff():
    call_command("seed_demo", "--not-production")
    assert User.objects.get(email="staff@example.com").is_staff


def test_it_refuses_a_production_configuration(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="published password"):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_the_console_has_history_and_both_staff_levels_sign_in_with_totp():
    call_command("seed_demo", "--not-production")
    assert Payment.objects.filter(status="succeeded").count() == 6 and Payment.objects.filter(status="failed").exists()
    assert Dispute.objects.filter(status="needs_response").exists()
    assert FraudFlag.objects.filter(status="open").exists()
    assert WebhookEvent.objects.filter(status="failed").exists()
    for email, group in [("staff@example.com", "Finance"), ("support@example.com", "Support")]:
        user = User.objects.get(email=email)
        assert user.groups.filter(name=group).exists()
        assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    # The seeded payments' cards never reached Stripe: they are history, never offered for a charge.
    assert not PaymentMethod.objects.active().exists()


def test_no_console_member_is_a_superuser_and_the_admin_operator_has_totp():
    call_command("seed_demo", "--not-production")
    assert not User.objects.filter(groups__name__in=["Finance", "Support"], is_superuser=True).exists()
    operator = User.objects.get(email="admin@example.com")
    assert operator.is_superuser and not operator.groups.exists()
    assert Authenticator.objects.filter(user=operator, type=Authenticator.Type.TOTP).exists()


def test_a_student_has_an_active_monthly_subscription_with_this_periods_lot():
    call_command("seed_demo", "--not-production")

    subscription = Subscription.objects.get(account__user__email="dina.student@example.com")
    assert subscription.status == Subscription.Status.ACTIVE and subscription.plan.is_subscription
    [payment] = subscription.payments.all()
    assert payment.status == Payment.Status.SUCCEEDED and payment.lot.minutes_remaining == subscription.plan.minutes
    assert payment.lot.name.startswith("Monthly 8 h, ")
    assert payment.lot.expires_at > subscription.current_period_end


def test_every_seeded_purchase_has_its_numbered_receipt_with_a_pdf_and_no_email_goes_out(mailoutbox):
    call_command("seed_demo", "--not-production")

    paid = Payment.objects.filter(status=Payment.Status.SUCCEEDED)
    issued = Receipt.objects.filter(kind=Receipt.Kind.RECEIPT).order_by("sequence")
    assert sorted(receipt.payment_id for receipt in issued) == sorted(paid.values_list("pk", flat=True))
    year = timezone.localdate().year
    assert [receipt.number for receipt in issued] == [f"{year}-{n:06d}" for n in range(1, paid.count() + 1)]
    ana_first = issued.filter(account__user__email="ana.student@example.com").first()
    assert ana_first.snapshot["student_name"] == "Ana Moreno" and ana_first.snapshot["plan"] == "Intensive"
    for receipt in issued:
        assert receipt.pdf and receipt.pdf_rendered_at is not None
    assert ana_first.number in pdf_text(receipt_pdf(receipt=ana_first))
    assert mailoutbox == []  # history: those emails went out when the purchases were made


def test_seeding_again_issues_no_second_receipt():
    call_command("seed_demo", "--not-production")
    numbers = list(Receipt.objects.values_list("number", flat=True))

    call_command("seed_demo", "--not-production")

    assert list(Receipt.objects.values_list("number", flat=True)) == numbers
