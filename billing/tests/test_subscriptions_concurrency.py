"""Subscribe clicks racing each other (two tabs, a double click): one subscription, counted at the
stand-in, and one lot. localstripe ignores Idempotency-Key, so this is our database's guarantee (the
account lock, the unique token and the one-live-subscription constraint), not Stripe's. Runs on
SQLite and, in CI's second leg, on PostgreSQL."""

import threading

import pytest

from billing import samples
from billing.errors import SubscriptionRefused
from billing.models import LedgerEntry, Lot, Payment, Subscription
from billing.subscriptions import (
    SUBSCRIPTION_ALREADY,
    subscribe_token_issue,
    subscription_plan_change,
    subscription_start,
)
from billing.tests.builders import add_card, make_student, make_subscription_plan, stripe_billing, subscribe
from billing.tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def plan():
    return make_subscription_plan("Monthly 8 h", minutes=480, price_cents=9900)


@pytest.fixture
def account(localstripe):
    account = make_student()
    add_card(account, localstripe)
    return account


def stripe_subscriptions(localstripe):
    return localstripe.get("/v1/subscriptions", status="all", limit=100)["data"]


def assert_one_subscription(localstripe, account):
    [made] = stripe_subscriptions(localstripe)
    live = Subscription.objects.get(account=account, status__in=Subscription.LIVE)
    assert (live.status, live.stripe_subscription_id) == (Subscription.Status.ACTIVE, made["id"])
    assert Payment.objects.count() == Lot.objects.count() == LedgerEntry.objects.filter(kind="credit").count() == 1
    account.refresh_from_db()
    assert account.balance_minutes == 480
    return live


def test_two_tabs_subscribing_at_once_make_one_subscription(localstripe, account, plan):
    tokens = iter([subscribe_token_issue(account=account, plan=plan) for _ in range(2)])
    next_token = threading.Lock()

    def click():
        with next_token:
            token = next(tokens)
        return subscription_start(account=account, token=token)

    results, errors = run_at_once(click, 2)

    live = assert_one_subscription(localstripe, account)
    assert [subscription.pk for subscription in results] == [live.pk]
    [price] = localstripe.get("/v1/plans", limit=100)["data"]  # both tabs wanted the plan's first Price
    assert price["id"] == live.plan.stripe_price_id
    [refused] = errors  # the other tab is told why, and nothing of it reached Stripe
    assert isinstance(refused, SubscriptionRefused) and str(refused) == SUBSCRIPTION_ALREADY
    assert Subscription.objects.count() == 1


def test_a_double_click_with_one_token_makes_one_subscription(localstripe, account, plan):
    token = subscribe_token_issue(account=account, plan=plan)

    results, errors = run_at_once(lambda: subscription_start(account=account, token=token), 2)

    assert errors == []
    live = assert_one_subscription(localstripe, account)
    assert [subscription.pk for subscription in results] == [live.pk, live.pk]
    assert sorted(subscription.replayed for subscription in results) == [False, True]


def test_five_tabs_make_one_subscription(localstripe, account, plan):
    tokens = iter([subscribe_token_issue(account=account, plan=plan) for _ in range(5)])
    next_token = threading.Lock()

    def click():
        with next_token:
            token = next(tokens)
        return subscription_start(account=account, token=token)

    results, errors = run_at_once(click, 5)

    assert_one_subscription(localstripe, account)
    assert len(results) == 1 and len(errors) == 4
    assert {str(error) for error in errors} == {SUBSCRIPTION_ALREADY}


def test_two_clicks_on_one_upgrade_change_the_plan_at_stripe_once(localstripe, settings, account, plan):
    subscribed = subscribe(account, plan)
    bigger = make_subscription_plan("Monthly 12 h", minutes=720, price_cents=13900)
    assert subscribed.plan.stripe_price_id and subscribed.account.stripe_customer_id  # read before the threads

    first_invoice = subscribed.payments.get().stripe_invoice_id
    with stripe_billing(localstripe, settings) as stripe:
        update = rf"^POST /v1/subscriptions/{subscribed.stripe_subscription_id}$"
        stripe.answer(
            update,
            lambda sent: (
                200,
                samples.subscription(subscribed, price_id=sent["items[0][plan]"]) | {"latest_invoice": first_invoice},
            ),
        )
        results, errors = run_at_once(lambda: subscription_plan_change(subscription=subscribed, plan_id=bigger.pk), 2)

    assert errors == []
    assert len(stripe.sent[update]) == 1  # the second click waited, then found the plan changed
    assert len([price for price in localstripe.get("/v1/plans", limit=100)["data"] if price["amount"] == 13900]) == 1
    assert {subscription.plan_id for subscription, _ in results} == {bigger.pk}
    assert Subscription.objects.get().plan == bigger
