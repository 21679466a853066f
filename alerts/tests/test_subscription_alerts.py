"""Subscription alerts: dunning once per failed renewal, a reminder three days before each renewal,
and a word when the subscription ends; each resolved once it stops being true."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from alerts.models import Notification
from alerts.notifications import alerts_scan
from billing.models import Payment, PaymentMethod, Plan, Subscription
from billing.tests.builders import make_plan, make_student

pytestmark = pytest.mark.django_db
Kind = Notification.Kind


def subscribed(*, status=Subscription.Status.ACTIVE, renews_in=timedelta(days=20), **fields):
    account = make_student()
    card = PaymentMethod.objects.create(
        account=account, stripe_payment_method_id=f"pm_{account.pk}", brand="visa", last4="4242",
        exp_month=12, exp_year=2040, is_default=True,
    )  # fmt: skip
    plan = make_plan("Monthly 8 h", 480, 9900, kind=Plan.Kind.SUBSCRIPTION, interval=Plan.Interval.MONTH)
    end = timezone.now() + renews_in
    return Subscription.objects.create(
        account=account, plan=plan, status=status, idempotency_key=f"k{account.pk}", payment_method=card,
        stripe_subscription_id=f"sub_{account.pk}", current_period_start=end - timedelta(days=30),
        current_period_end=end, **fields,
    )  # fmt: skip


def failed_renewal(subscription, reason="Your card has insufficient funds."):
    return Payment.objects.create(
        account=subscription.account, plan=subscription.plan, subscription=subscription,
        kind=Payment.Kind.SUBSCRIPTION, amount_cents=9900, currency="EUR", minutes=480, validity_days=365,
        payment_method=subscription.payment_method, status=Payment.Status.FAILED, failure_code="insufficient_funds",
        failure_message=reason, idempotency_key=f"invoice-in_{subscription.pk}",
        stripe_invoice_id=f"in_{subscription.pk}",
    )  # fmt: skip


def alerts_of(kind):
    return list(Notification.objects.filter(kind=kind))


def test_a_failed_renewal_alerts_once_with_the_reason_and_pay_now_and_not_as_a_plain_failed_payment():
    subscription = subscribed(status=Subscription.Status.PAST_DUE, failure_message="Your card has insufficient funds.")
    failed_renewal(subscription)

    alerts_scan()
    alerts_scan()

    [alert] = alerts_of(Kind.SUBSCRIPTION_PAST_DUE)
    assert "insufficient funds" in alert.body and "Pay now" in alert.body
    assert alert.link == reverse("student:subscription")
    assert alert.recipient == subscription.account.user
    assert alerts_of(Kind.PAYMENT_FAILED) == []


def test_dunning_leaves_the_bell_once_the_subscription_is_paid_or_ended():
    subscription = subscribed(status=Subscription.Status.PAST_DUE)
    failed_renewal(subscription)
    alerts_scan()

    Subscription.objects.filter(pk=subscription.pk).update(status=Subscription.Status.ACTIVE)
    alerts_scan()

    [alert] = alerts_of(Kind.SUBSCRIPTION_PAST_DUE)
    assert alert.resolved_at is not None


def test_a_renewal_is_announced_three_days_before_with_amount_and_card_once_per_period():
    subscription = subscribed(renews_in=timedelta(days=5))

    alerts_scan()
    assert alerts_of(Kind.SUBSCRIPTION_RENEWING) == []

    with time_machine.travel(timezone.now() + timedelta(days=2, hours=1)):
        alerts_scan()
        alerts_scan()
    [alert] = alerts_of(Kind.SUBSCRIPTION_RENEWING)
    assert "€99.00" in alert.body and "Visa 4242" in alert.body and "8 h" in alert.body

    # The next period: a new reminder.
    Subscription.objects.filter(pk=subscription.pk).update(
        current_period_start=subscription.current_period_end,
        current_period_end=subscription.current_period_end + timedelta(days=30),
    )
    with time_machine.travel(subscription.current_period_end + timedelta(days=28)):
        alerts_scan()
    assert len(alerts_of(Kind.SUBSCRIPTION_RENEWING)) == 2


def test_a_subscription_set_to_end_is_not_announced_as_renewing():
    subscribed(renews_in=timedelta(days=2), cancel_at_period_end=True)

    alerts_scan()

    assert alerts_of(Kind.SUBSCRIPTION_RENEWING) == []


def test_an_ended_subscription_says_the_hours_stay_until_they_expire():
    subscribed(status=Subscription.Status.CANCELED, ended_at=timezone.now())

    alerts_scan()
    alerts_scan()

    [alert] = alerts_of(Kind.SUBSCRIPTION_ENDED)
    assert "stay until they expire" in alert.body
