"""Fraud flags: raised from Stripe's early fraud warnings (and, later, our own rules)."""

from billing.models import FraudFlag


def fraud_flag_raise(*, payment, warning_object):
    """Create or update the flag for an early fraud warning. Idempotent by the warning's id."""
    flag, _ = FraudFlag.objects.update_or_create(
        stripe_warning_id=warning_object["id"],
        defaults={
            "account_id": payment.account_id,
            "payment": payment,
            "fraud_type": warning_object.get("fraud_type") or "unknown",
            "actionable": bool(warning_object.get("actionable", True)),
        },
    )
    return flag
