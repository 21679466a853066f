"""Payment attempts for the fraud tests, written as payment_start leaves them (our own rows: no
Stripe call is involved), at a fixed time with no hour or day boundary near."""

from datetime import UTC, datetime, timedelta
from itertools import count

from django.utils import timezone

from billing.models import Payment, PaymentMethod
from billing.tests.builders import credit

# Half past the hour, in the middle of a UTC day: no hour or day boundary inside a test.
NOW = datetime(2025, 3, 10, 10, 30, tzinfo=UTC)
_ids = count(1)


def card(account, last4=None):
    number = next(_ids)
    return PaymentMethod.objects.create(
        account=account,
        stripe_payment_method_id=f"pm_fraud_test_{number}",
        brand="visa",
        last4=last4 or f"{number:04d}"[-4:],
        exp_month=12,
        exp_year=2034,
    )


def attempt(account, plan, *, with_card=None, status="failed", code="not_charged", minutes_ago=0, amount_cents=None):
    """One payment attempt as payment_start leaves it, `minutes_ago` before now. "not_charged" is a
    failure that no rule counts as a decline, so a test sees only the rule it is about."""
    with_card = with_card or account.payment_methods.first() or card(account)
    amount_cents = amount_cents or plan.price_cents
    lot = credit(account, plan.minutes, plan=plan, price_cents=amount_cents) if status == "succeeded" else None
    payment = Payment.objects.create(
        account=account,
        plan=plan,
        kind="purchase",
        amount_cents=amount_cents,
        currency=plan.currency,
        minutes=plan.minutes,
        validity_days=plan.validity_days,
        payment_method=with_card,
        status=status,
        failure_code=code if status == "failed" else "",
        idempotency_key=f"fraud-test-{next(_ids)}",
        lot=lot,
    )
    at = timezone.now() - timedelta(minutes=minutes_ago)
    settled_at = at if status in ("succeeded", "failed") else None
    Payment.objects.filter(pk=payment.pk).update(created_at=at, settled_at=settled_at)
    payment.refresh_from_db()
    return payment
