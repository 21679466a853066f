"""Small builders for tests: a student with an account, a lot bought some days ago."""

from datetime import timedelta
from itertools import count

from django.utils import timezone

from billing import ledger
from portal.models import User

PASSWORD = "correct-horse-battery-9"
_numbers = count(1)


def make_student(email=None, **fields):
    email = email or f"student{next(_numbers)}@example.com"
    user = User.objects.create_user(email, PASSWORD, **fields)
    return ledger.account_open(user=user)


def make_staff(email="staff@example.com"):
    return User.objects.create_user(email, PASSWORD, is_staff=True)


def credit(account, minutes, *, days_valid=90, bought_days_ago=0, name="Standard", price_cents=15000):
    purchased_at = timezone.now() - timedelta(days=bought_days_ago)
    return ledger.lot_credit(
        account=account,
        name=name,
        minutes=minutes,
        price_cents=price_cents,
        purchased_at=purchased_at,
        expires_at=purchased_at + timedelta(days=days_valid),
    )


def use(account, minutes, *, days_ago=0, tutor="Dr. Maria Keller", subject="Mathematics"):
    return ledger.usage_record(
        account=account,
        minutes=minutes,
        occurred_at=timezone.now() - timedelta(days=days_ago, seconds=1),
        tutor=tutor,
        subject=subject,
    )
