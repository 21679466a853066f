"""Subscribing, self-service, plan changes and the reconciliation, against a real localstripe: one
Stripe subscription per click, each paid period credited once as a lot named after it.

localstripe makes and pays a subscription's first invoice, runs 3-D Secure, declines, cancels and
cancels at period end. It has no price changes and no renewals: those answers come from Stripe's
API reference, served at the HTTP boundary (builders.StripeBilling), in the 2026-10-28 shapes.
"""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from billing import payments, receipts, refunds, samples, stripe_gateway
from billing.audit import ReasonRequired
from billing.cards import card_make_default, customer_forget
from billing.errors import AccountBlocked, SubscriptionRefused
from billing.formatting import date_text
from billing.fraud.blocks import account_block
from billing.models import AuditEntry, LedgerEntry, Lot, Payment, Plan, Receipt, Subscription
from billing.subscriptions import (
    NOT_FOR_SALE,
    NOT_STARTED,
    SUBSCRIPTION_ALREADY,
    period_after,
    plan_change_options,
    plan_price_ensure,
    prorated_minutes,
    subscribe_button,
    subscribe_token_issue,
    subscription_cancel_at_period_end,
    subscription_cancel_now,
    subscription_card_change,
    subscription_open_payment,
    subscription_payment_refresh,
    subscription_plan_change,
    subscription_resume,
    subscription_start,
    subscriptions_reconcile,
)
from billing.tests.builders import (
    add_card,
    make_plan,
    make_staff,
    make_student,
    make_subscription_plan,
    stripe_billing,
    subscribe,
    use,
)
from billing.tests.network import LossyProxy
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db

Status = Subscription.Status
YEAR = timezone.localdate().year


@pytest.fixture
def plan():
    return make_subscription_plan("Monthly 8 h", minutes=480, price_cents=9900)


@pytest.fixture
def bigger_plan():
    return make_subscription_plan("Monthly 12 h", minutes=720, price_cents=13900)


@pytest.fixture
def smaller_plan():
    return make_subscription_plan("Monthly 4 h", minutes=240, price_cents=5900)


@pytest.fixture
def account():
    return make_student()


@pytest.fixture
def subscribed(localstripe, account, plan):
    subscription = subscribe(account, plan, localstripe)
    assert subscription.status == Status.ACTIVE
    return subscription


@contextmanager
def answers_lost(localstripe, settings, requests):
    """Inside this block Stripe acts on `requests` (a pattern of request lines) but its answers are lost."""
    proxy = LossyProxy(localstripe.url, drop_response=requests)
    settings.STRIPE_API_BASE = proxy.url
    try:
        yield proxy
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url


def at_stripe(localstripe, subscription):
    return localstripe.get(f"/v1/subscriptions/{subscription.stripe_subscription_id}")


def stripe_subscriptions(localstripe):
    return localstripe.get("/v1/subscriptions", status="all", limit=100)["data"]


def month_of(moment):
    """ "December 2026": how a lot names a monthly period (Python's own month names, not ours)."""
    return timezone.localtime(moment).strftime("%B %Y")


def balance(account):
    account.refresh_from_db()
    return account.balance_minutes


class TestSubscribing:
    def test_the_first_invoice_paid_makes_it_active_with_one_lot_for_the_period(self, localstripe, account, plan):
        card = add_card(account, localstripe)

        subscription = subscribe(account, plan)

        remote = at_stripe(localstripe, subscription)
        assert (subscription.status, subscription.plan, subscription.payment_method) == (Status.ACTIVE, plan, card)
        assert (remote["status"], remote["customer"]) == ("active", account.stripe_customer_id)
        assert remote["metadata"] == {"subscription_id": str(subscription.pk), "account_id": str(account.pk)}
        assert remote["items"]["data"][0]["plan"]["id"] == Plan.objects.get(pk=plan.pk).stripe_price_id
        start, end = subscription.current_period_start, subscription.current_period_end
        assert (int(start.timestamp()), int(end.timestamp())) == (
            remote["current_period_start"],
            remote["current_period_end"],
        )
        [payment] = subscription.payments.all()
        assert payment.stripe_invoice_id == remote["latest_invoice"]
        assert (payment.kind, payment.status, payment.amount_cents, payment.currency) == (
            Payment.Kind.SUBSCRIPTION,
            Payment.Status.SUCCEEDED,
            9900,
            "EUR",
        )
        assert (payment.period_start, payment.period_end) == (start, end)
        lot = payment.lot
        assert lot.name == f"Monthly 8 h, {month_of(start)}"
        assert (lot.minutes_purchased, lot.minutes_remaining, lot.price_cents, lot.plan) == (480, 480, 9900, plan)
        assert lot.expires_at == period_after(end, "month", 1)  # the end of the period after this one
        assert balance(account) == 480

    @pytest.mark.parametrize(("rollover_periods", "months_after_the_period"), [(0, 0), (1, 1), (2, 2)])
    def test_unused_hours_roll_over_for_the_plans_number_of_periods(
        self, localstripe, account, rollover_periods, months_after_the_period
    ):
        plan = make_subscription_plan(rollover_periods=rollover_periods)

        subscription = subscribe(account, plan, localstripe)

        lot = subscription.payments.get().lot
        end = subscription.current_period_end
        assert lot.expires_at == period_after(end, "month", months_after_the_period)
        if rollover_periods == 0:
            assert lot.expires_at == end  # used in its own period or lost

    def test_the_subscription_charges_the_default_card_it_shows(self, localstripe, account, plan):
        add_card(account, localstripe)
        chosen = add_card(account, localstripe, "5555555555554444")
        card_make_default(card=chosen)

        subscription = subscribe(account, plan)

        customer = localstripe.get(f"/v1/customers/{account.stripe_customer_id}")
        assert customer["invoice_settings"]["default_payment_method"] == chosen.stripe_payment_method_id
        assert subscription.payment_method == chosen
        intent = localstripe.get(f"/v1/payment_intents/{subscription.payments.get().stripe_payment_intent_id}")
        assert intent["payment_method"] == chosen.stripe_payment_method_id

    def test_the_first_invoice_gets_a_numbered_receipt_that_names_the_period(self, subscribed):
        payment = subscribed.payments.get()

        receipt = payment.receipt

        assert (receipt.kind, receipt.number) == (Receipt.Kind.RECEIPT, f"{YEAR}-000001")
        start, end = payment.period_start, payment.period_end
        assert receipt.snapshot["description"] == f"Monthly 8 h, {month_of(start)}: 8 h of tutoring"
        assert receipt.snapshot["period"] == f"{date_text(start)} – {date_text(end)}"
        text = pdf_text(receipts.receipt_pdf(receipt=receipt))
        assert f"Monthly 8 h, {month_of(start)}" in text
        assert date_text(start) in text and date_text(end) in text

    def test_a_repeated_click_returns_the_subscription_it_made(self, localstripe, account, plan):
        add_card(account, localstripe)
        token = subscribe_token_issue(account=account, plan=plan)

        first = subscription_start(account=account, token=token)
        again = subscription_start(account=account, token=token)

        assert (again.pk, again.replayed, first.replayed) == (first.pk, True, False)
        assert len(stripe_subscriptions(localstripe)) == 1
        assert Lot.objects.count() == 1

    def test_packages_can_still_be_bought_beside_it(self, localstripe, subscribed, account):
        package = make_plan("Standard", minutes=600, price_cents=15000)

        bought = payments.payment_start(
            account=account, token=payments.payment_token_issue(account=account, plan=package, kind="purchase")
        )

        assert bought.status == Payment.Status.SUCCEEDED
        assert balance(account) == 480 + 600

    def test_a_subscription_plan_cannot_be_bought_as_a_package(self, localstripe, account, plan):
        add_card(account, localstripe)
        token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")

        with pytest.raises(payments.PaymentRefused, match="no longer on sale"):
            payments.payment_start(account=account, token=token)
        assert localstripe.payment_intents() == []


class TestThreeDSecureFirstInvoice:
    def test_it_waits_for_the_bank_then_activates_and_credits_once(self, localstripe, account, plan):
        subscription = subscribe(account, plan, localstripe, "4000002500003155")

        assert subscription.status == Status.INCOMPLETE
        waiting = subscription_open_payment(subscription=subscription)
        assert waiting.status == Payment.Status.REQUIRES_ACTION
        assert not Lot.objects.exists()
        secret = payments.payment_client_secret(payment=waiting)  # what the page hands to Stripe.js

        localstripe.browser_authenticate(secret, success=True)
        paid = subscription_payment_refresh(payment=waiting)
        again = subscription_payment_refresh(payment=paid)  # the page polls once more

        subscription.refresh_from_db()
        assert (paid.status, again.lot) == (Payment.Status.SUCCEEDED, paid.lot)
        assert paid.lot.minutes_purchased == 480
        assert subscription.status == Status.ACTIVE
        assert subscription_open_payment(subscription=subscription) is None
        assert LedgerEntry.objects.filter(kind="credit").count() == 1
        assert at_stripe(localstripe, subscription)["status"] == "active"

    def test_a_failed_check_leaves_nothing_running(self, localstripe, account, plan):
        subscription = subscribe(account, plan, localstripe, "4000002500003155")
        waiting = subscription_open_payment(subscription=subscription)

        localstripe.browser_authenticate(payments.payment_client_secret(payment=waiting), success=False)
        failed = subscription_payment_refresh(payment=waiting)

        subscription.refresh_from_db()
        assert failed.status == Payment.Status.FAILED
        assert (subscription.status, subscription.get_status_display()) == (Status.INCOMPLETE_EXPIRED, "Not started")
        assert subscription.failure_message == "The card's authentication (3-D Secure) failed."
        assert at_stripe(localstripe, subscription)["status"] == "canceled"
        assert not Lot.objects.exists()


class TestDeclinedFirstInvoice:
    def test_it_starts_nothing_says_why_and_cancels_the_subscription_at_stripe(self, localstripe, account, plan):
        subscription = subscribe(account, plan, localstripe, "4000000000000341")

        assert (subscription.status, subscription.get_status_display()) == (Status.INCOMPLETE_EXPIRED, "Not started")
        assert (subscription.failure_code, subscription.failure_message) == (
            "card_declined",
            "Your card was declined by your bank.",
        )
        assert subscription.ended_at is not None
        assert at_stripe(localstripe, subscription)["status"] == "canceled"  # it can never charge later
        [payment] = subscription.payments.all()
        assert (payment.status, payment.lot) == (Payment.Status.FAILED, None)
        assert not LedgerEntry.objects.exists()

    def test_another_card_can_then_subscribe(self, localstripe, account, plan):
        subscribe(account, plan, localstripe, "4000000000000341")
        card_make_default(card=add_card(account, localstripe))  # "try another card"

        again = subscribe(account, plan)

        assert again.status == Status.ACTIVE
        assert account.subscriptions.count() == 2
        assert balance(account) == 480
        assert sorted(remote["status"] for remote in stripe_subscriptions(localstripe)) == ["active", "canceled"]


class TestRefusals:
    """Bad input is refused with a clear message, before anything is made at Stripe."""

    def assert_refused(self, localstripe, account, error, message, token):
        subscriptions_before = Subscription.objects.count()
        at_stripe_before = len(stripe_subscriptions(localstripe))
        with pytest.raises(error, match=message):
            subscription_start(account=account, token=token)
        assert Subscription.objects.count() == subscriptions_before
        assert len(stripe_subscriptions(localstripe)) == at_stripe_before

    def test_a_plan_no_longer_on_sale(self, localstripe, account, plan):
        add_card(account, localstripe)
        token = subscribe_token_issue(account=account, plan=plan)
        Plan.objects.filter(pk=plan.pk).update(is_active=False)
        self.assert_refused(localstripe, account, SubscriptionRefused, NOT_FOR_SALE, token)

    def test_a_package_offered_as_a_subscription(self, localstripe, account):
        add_card(account, localstripe)
        token = subscribe_token_issue(account=account, plan=make_plan())
        self.assert_refused(localstripe, account, SubscriptionRefused, NOT_FOR_SALE, token)

    @pytest.mark.parametrize("change", [{"price_cents": 10900}, {"minutes": 240}, {"interval": "week"}])
    def test_a_plan_changed_since_the_button_was_shown(self, localstripe, account, plan, change):
        add_card(account, localstripe)
        token = subscribe_token_issue(account=account, plan=plan)
        Plan.objects.filter(pk=plan.pk).update(**change)
        self.assert_refused(localstripe, account, SubscriptionRefused, "Monthly 8 h has changed", token)

    def test_a_second_subscription(self, localstripe, subscribed, account, bigger_plan):
        token = subscribe_token_issue(account=account, plan=bigger_plan)
        self.assert_refused(localstripe, account, SubscriptionRefused, SUBSCRIPTION_ALREADY, token)
        assert Subscription.objects.get() == subscribed

    def test_a_blocked_account(self, localstripe, account, plan):
        add_card(account, localstripe)
        token = subscribe_token_issue(account=account, plan=plan)
        account_block(account=account, actor=make_staff(), reason="Confirmed card testing")
        account.refresh_from_db()
        self.assert_refused(localstripe, account, AccountBlocked, "Purchases are paused", token)

    def test_an_expired_button(self, localstripe, account, plan):
        add_card(account, localstripe)
        with time_machine.travel(timezone.now() - timedelta(hours=13)):
            token = subscribe_token_issue(account=account, plan=plan)
        self.assert_refused(localstripe, account, SubscriptionRefused, "expired", token)

    def test_another_students_button(self, localstripe, account, plan):
        add_card(account, localstripe)
        token = subscribe_token_issue(account=make_student(), plan=plan)
        self.assert_refused(localstripe, account, SubscriptionRefused, "not valid", token)

    @pytest.mark.parametrize("tampered", ["", "nonsense", "x" * 3000])
    def test_a_missing_or_tampered_button(self, localstripe, account, plan, tampered):
        add_card(account, localstripe)
        self.assert_refused(localstripe, account, SubscriptionRefused, "not valid", tampered)

    def test_no_card(self, localstripe, account, plan):
        self.assert_refused(
            localstripe,
            account,
            SubscriptionRefused,
            "add a card first",
            subscribe_token_issue(account=account, plan=plan),
        )


class TestSubscribeButton:
    def test_it_offers_a_token_with_a_card_and_no_live_subscription(self, localstripe, account, plan):
        card = add_card(account, localstripe)

        button = subscribe_button(account=account, plan=plan, card=card)

        assert (button.card, button.paused, button.current) == (card, False, None)
        assert subscription_start(account=account, token=button.token).status == Status.ACTIVE

    def test_it_offers_none_beside_a_live_subscription_for_a_blocked_account_or_without_a_card(
        self, localstripe, subscribed, account, bigger_plan
    ):
        card = account.payment_methods.get()
        assert subscribe_button(account=account, plan=bigger_plan, card=card).token == ""
        assert subscribe_button(account=account, plan=bigger_plan, card=card).current == subscribed
        assert subscribe_button(account=make_student(), plan=bigger_plan, card=None).token == ""
        account_block(account=account, actor=make_staff(), reason="Confirmed card testing")
        account.refresh_from_db()
        assert subscribe_button(account=account, plan=bigger_plan, card=card).paused is True


class TestStripeUnanswered:
    def test_stripe_refusing_before_it_made_anything_starts_nothing(self, localstripe, settings, account, plan):
        add_card(account, localstripe)
        proxy = LossyProxy(
            localstripe.url,
            canned={r"^POST /v1/subscriptions$": (400, {"error": {"type": "invalid_request_error", "message": "No"}})},
        )
        settings.STRIPE_API_BASE = proxy.url
        try:
            subscription = subscribe(account, plan)
        finally:
            proxy.close()
            settings.STRIPE_API_BASE = localstripe.url

        assert subscription.status == Status.INCOMPLETE_EXPIRED
        assert "You were not charged" in subscription.failure_message
        assert stripe_subscriptions(localstripe) == []
        assert subscribe(account, plan).status == Status.ACTIVE  # the student may try again at once

    def test_an_answer_lost_leaves_it_starting_and_a_second_click_makes_no_second_one(
        self, localstripe, settings, account, plan
    ):
        add_card(account, localstripe)
        with answers_lost(localstripe, settings, r"^POST /v1/subscriptions$") as proxy:
            subscription = subscribe(account, plan)

        assert (subscription.status, proxy.dropped) == (Status.STARTING, 1)
        with pytest.raises(SubscriptionRefused, match=SUBSCRIPTION_ALREADY):
            subscribe(account, plan)
        assert len(stripe_subscriptions(localstripe)) == 1


class TestCancelAndResume:
    def test_cancel_at_period_end_keeps_it_running_until_then_and_resume_undoes_it(self, localstripe, subscribed):
        cancelling = subscription_cancel_at_period_end(subscription=subscribed)

        assert (cancelling.status, cancelling.cancel_at_period_end) == (Status.ACTIVE, True)
        assert cancelling.display_status == "Cancels at period end"
        assert at_stripe(localstripe, subscribed)["cancel_at_period_end"] is True
        with pytest.raises(SubscriptionRefused, match="already ends"):
            subscription_cancel_at_period_end(subscription=cancelling)

        resumed = subscription_resume(subscription=cancelling)

        assert (resumed.cancel_at_period_end, resumed.display_status) == (False, "Active")
        assert at_stripe(localstripe, subscribed)["cancel_at_period_end"] is False
        with pytest.raises(SubscriptionRefused, match="nothing to resume"):
            subscription_resume(subscription=resumed)

    def test_a_period_already_over_cannot_be_resumed(self, localstripe, subscribed):
        cancelling = subscription_cancel_at_period_end(subscription=subscribed)

        with (
            time_machine.travel(cancelling.current_period_end + timedelta(minutes=1)),
            pytest.raises(SubscriptionRefused),
        ):
            subscription_resume(subscription=cancelling)
        assert at_stripe(localstripe, subscribed)["cancel_at_period_end"] is True

    def test_staff_cancel_now_ends_it_keeps_the_hours_and_is_audited(self, localstripe, subscribed, account):
        staff = make_staff()
        use(account, 60)
        with pytest.raises(ReasonRequired):
            subscription_cancel_now(subscription=subscribed, actor=staff, reason=" ")
        assert at_stripe(localstripe, subscribed)["status"] == "active"

        ended = subscription_cancel_now(subscription=subscribed, actor=staff, reason="Family moved away")

        assert (ended.status, ended.display_status, ended.live) == (Status.CANCELED, "Ended", False)
        assert at_stripe(localstripe, subscribed)["status"] == "canceled"
        assert balance(account) == 420  # hours already granted stay until they expire
        entry = AuditEntry.objects.get(action="subscription.cancel_now")
        assert (entry.actor, entry.reason, entry.before["status"], entry.after["status"]) == (
            staff,
            "Family moved away",
            "active",
            "canceled",
        )
        with pytest.raises(SubscriptionRefused, match="has ended"):
            subscription_cancel_at_period_end(subscription=ended)

    def test_staff_cancel_at_period_end_is_audited_with_its_reason(self, localstripe, subscribed):
        staff = make_staff()

        subscription_cancel_at_period_end(subscription=subscribed, actor=staff, reason="Asked by phone")

        entry = AuditEntry.objects.get(action="subscription.cancel_at_period_end")
        assert (entry.reason, entry.before["cancel_at_period_end"], entry.after["cancel_at_period_end"]) == (
            "Asked by phone",
            False,
            True,
        )

    def test_after_it_ended_the_student_may_subscribe_again(self, localstripe, subscribed, account, plan):
        subscription_cancel_now(subscription=subscribed, actor=make_staff(), reason="Paused for the summer")

        again = subscribe(account, plan)

        assert again.status == Status.ACTIVE and again.pk != subscribed.pk
        assert balance(account) == 960


class TestCardChange:
    def test_the_new_card_becomes_the_default_the_subscription_charges(self, localstripe, subscribed, account):
        other = add_card(account, localstripe, "5555555555554444")

        changed = subscription_card_change(subscription=subscribed, card=other)

        other.refresh_from_db()
        assert (changed.payment_method, other.is_default) == (other, True)
        customer = localstripe.get(f"/v1/customers/{account.stripe_customer_id}")
        assert customer["invoice_settings"]["default_payment_method"] == other.stripe_payment_method_id

    def test_another_students_card_is_refused(self, localstripe, subscribed):
        foreign = add_card(make_student(), localstripe)

        with pytest.raises(SubscriptionRefused, match="not one of your saved cards"):
            subscription_card_change(subscription=subscribed, card=foreign)
        subscribed.refresh_from_db()
        assert subscribed.payment_method != foreign


def proration_invoice(row, *, old, new, now, status="paid", payment_intent_id=None):
    """Stripe's invoice for an upgrade made at `now` (always_invoice) from the `old` to the `new`
    (price id, cents): the unused time on the old price credited, the remaining time on the new one
    charged, both over the rest of the period."""
    start, end = int(row.current_period_start.timestamp()), int(row.current_period_end.timestamp())
    rest = (int(now.timestamp()), end)
    share = (end - rest[0]) / (end - start)
    (old_price, old_cents), (new_price, new_cents) = old, new
    unused, remaining = -round(old_cents * share), round(new_cents * share)
    lines = [
        samples.invoice_line(row, amount_cents=unused, period=rest, price_id=old_price, proration=True),
        samples.invoice_line(row, amount_cents=remaining, period=rest, price_id=new_price, proration=True),
    ]
    return samples.invoice(
        row,
        status=status,
        amount_cents=unused + remaining,
        billing_reason="subscription_update",
        lines=lines,
        period=rest,
        payment_intent_id=payment_intent_id,
    )


PRICE_SENT = "items[0][plan]"  # the legacy Plans API's name for the price, as localstripe speaks it


class TestPlanChange:
    """localstripe answers a price change with proration with a 500: Stripe's answers are served,
    made from what the portal sent (the new price it made on first use)."""

    def update_path(self, subscription):
        return rf"^POST /v1/subscriptions/{subscription.stripe_subscription_id}$"

    def upgraded(self, stripe, subscribed, new_plan):
        """Stripe's answer to an upgrade whose proration invoice is paid at once: the new price. (The
        answer is made on the proxy's thread, which cannot read the test's database: what it needs
        of the subscription is read here.)"""
        old = (subscribed.plan.stripe_price_id, subscribed.plan.price_cents)
        assert subscribed.account.stripe_customer_id

        def answer(sent):
            invoice = stripe.has(
                proration_invoice(subscribed, old=old, new=(sent[PRICE_SENT], new_plan.price_cents), now=timezone.now())
            )
            remote = stripe.has(samples.subscription(subscribed, price_id=sent[PRICE_SENT]))
            return 200, remote | {"latest_invoice": invoice["id"]}

        return answer

    def test_an_upgrade_switches_now_and_credits_the_extra_hours_for_the_rest_of_the_period(
        self, localstripe, settings, subscribed, account, bigger_plan
    ):
        start, end = subscribed.current_period_start, subscribed.current_period_end

        quarter_left = start + (end - start) * 3 / 4
        with time_machine.travel(quarter_left, tick=False), stripe_billing(localstripe, settings) as stripe:
            stripe.answer(self.update_path(subscribed), self.upgraded(stripe, subscribed, bigger_plan))
            subscription, payment = subscription_plan_change(subscription=subscribed, plan_id=bigger_plan.pk)

        [sent] = stripe.sent[self.update_path(subscribed)]
        assert sent["items[0][id]"] == subscribed.stripe_item_id
        assert sent[PRICE_SENT] == Plan.objects.get(pk=bigger_plan.pk).stripe_price_id
        assert (sent["proration_behavior"], sent["payment_behavior"]) == ("always_invoice", "pending_if_incomplete")
        assert subscription.plan == bigger_plan
        assert (payment.kind, payment.status, payment.amount_cents) == (Payment.Kind.PLAN_CHANGE, "succeeded", 1000)
        assert payment.minutes == 60  # (12 h - 8 h) for the last quarter of the period
        assert payment.lot.name == f"Monthly 12 h, {month_of(start)} (upgrade)"
        assert payment.lot.expires_at == period_after(end, "month", 1)
        assert balance(account) == 480 + 60
        assert payment.receipt.snapshot["description"] == f"Monthly 12 h, {month_of(start)} (upgrade): 1 h of tutoring"

    def test_an_upgrade_invoice_told_again_by_its_events_credits_nothing_more(
        self, localstripe, settings, subscribed, account, bigger_plan, send
    ):
        with stripe_billing(localstripe, settings) as stripe:
            stripe.answer(self.update_path(subscribed), self.upgraded(stripe, subscribed, bigger_plan))
            _, payment = subscription_plan_change(subscription=subscribed, plan_id=bigger_plan.pk)
            invoice = stripe.objects[payment.stripe_invoice_id]
            send(
                samples.event("invoice.paid", invoice),
                samples.event("invoice.payment_succeeded", invoice),
                samples.event("invoice.paid", invoice),
            )

        assert payment.minutes > 0
        assert Payment.objects.filter(kind=Payment.Kind.PLAN_CHANGE).count() == 1
        assert LedgerEntry.objects.filter(kind="credit").count() == 2  # the period's lot and the upgrade's
        assert balance(account) == 480 + payment.minutes

    def test_an_upgrade_from_a_price_the_plan_no_longer_charges_credits_only_the_difference(
        self, localstripe, settings, subscribed, account, plan, bigger_plan
    ):
        # The plan's price changed since this subscription started: new subscribers get a new Price,
        # this one keeps the old one, which no plan names any more.
        Plan.objects.filter(pk=plan.pk).update(price_cents=10900)
        plan_price_ensure(plan=Plan.objects.get(pk=plan.pk))
        start, end = subscribed.current_period_start, subscribed.current_period_end

        with (
            time_machine.travel(start + (end - start) / 2, tick=False),
            stripe_billing(localstripe, settings) as stripe,
        ):
            stripe.answer(self.update_path(subscribed), self.upgraded(stripe, subscribed, bigger_plan))
            _, payment = subscription_plan_change(subscription=subscribed, plan_id=bigger_plan.pk)

        assert payment.minutes == 120  # (12 h - 8 h) for half the period, not 12 h for half of it
        assert balance(account) == 480 + 120

    def test_an_upgrade_waiting_for_3d_secure_keeps_the_plan_until_the_bank_confirms(
        self, localstripe, settings, subscribed, account, plan, bigger_plan
    ):
        card = add_card(account, localstripe, "4000002760003184")  # asks for 3-D Secure on every charge
        card_make_default(card=card)
        start, end = subscribed.current_period_start, subscribed.current_period_end
        old = (subscribed.plan.stripe_price_id, subscribed.plan.price_cents)
        customer = subscribed.account.stripe_customer_id  # read here: the answer is made on the proxy's thread

        def pending(stripe):
            def answer(sent):
                invoice = proration_invoice(
                    subscribed, old=old, new=(sent[PRICE_SENT], bigger_plan.price_cents), now=timezone.now()
                )
                intent = localstripe.post(
                    "/v1/payment_intents",
                    amount=str(invoice["amount_due"]),
                    currency="eur",
                    customer=customer,
                    payment_method=card.stripe_payment_method_id,
                    confirm="true",
                )
                stripe.has(
                    proration_invoice(
                        subscribed,
                        old=old,
                        new=(sent[PRICE_SENT], bigger_plan.price_cents),
                        now=timezone.now(),
                        status="open",
                        payment_intent_id=intent["id"],
                    )
                    | {"id": invoice["id"]}
                )
                # pending_if_incomplete: the old price stays until the invoice is paid.
                remote = samples.subscription(subscribed)
                pending_update = {"subscription_items": [{"price": sent[PRICE_SENT]}], "expires_at": 0}
                return 200, remote | {"latest_invoice": invoice["id"], "pending_update": pending_update}

            return answer

        with (
            time_machine.travel(start + (end - start) / 2, tick=False),
            stripe_billing(localstripe, settings) as stripe,
        ):
            stripe.answer(self.update_path(subscribed), pending(stripe))
            subscription, payment = subscription_plan_change(subscription=subscribed, plan_id=bigger_plan.pk)
            assert (payment.kind, payment.status) == (Payment.Kind.PLAN_CHANGE, Payment.Status.REQUIRES_ACTION)
            assert subscription.plan == plan
            assert balance(account) == 480

            localstripe.browser_authenticate(payments.payment_client_secret(payment=payment), success=True)
            invoice = stripe.objects[payment.stripe_invoice_id]
            stripe.has(invoice | {"status": "paid", "amount_paid": invoice["amount_due"], "amount_remaining": 0})
            stripe.has(samples.subscription(subscribed, price_id=Plan.objects.get(pk=bigger_plan.pk).stripe_price_id))
            paid = subscription_payment_refresh(payment=payment)

        subscribed.refresh_from_db()
        assert (paid.status, paid.minutes) == (Payment.Status.SUCCEEDED, 120)
        assert subscribed.plan == bigger_plan
        assert balance(account) == 480 + 120

    def test_a_second_click_on_the_same_upgrade_changes_nothing_more(
        self, localstripe, settings, subscribed, bigger_plan
    ):
        with stripe_billing(localstripe, settings) as stripe:
            stripe.answer(self.update_path(subscribed), self.upgraded(stripe, subscribed, bigger_plan))
            first = subscription_plan_change(subscription=subscribed, plan_id=bigger_plan.pk)
            with pytest.raises(SubscriptionRefused, match="already on this plan"):
                subscription_plan_change(subscription=first[0], plan_id=bigger_plan.pk)
            _, again = subscription_plan_change(subscription=subscribed, plan_id=bigger_plan.pk)  # a stale page

        assert again is None
        assert len(stripe.sent[self.update_path(subscribed)]) == 1
        assert Payment.objects.filter(kind=Payment.Kind.PLAN_CHANGE).count() == 1

    def test_a_declined_upgrade_keeps_the_plan_and_adds_nothing(
        self, localstripe, settings, subscribed, account, bigger_plan
    ):
        declined = {
            "error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
            }
        }
        with stripe_billing(localstripe, settings) as stripe:
            stripe.answer(self.update_path(subscribed), (402, declined))
            with pytest.raises(SubscriptionRefused, match="insufficient funds. Your plan stays Monthly 8 h."):
                subscription_plan_change(subscription=subscribed, plan_id=bigger_plan.pk)

        subscribed.refresh_from_db()
        assert subscribed.plan.name == "Monthly 8 h"
        assert balance(account) == 480
        assert not Payment.objects.filter(kind=Payment.Kind.PLAN_CHANGE).exists()

    def test_a_downgrade_charges_nothing_now_and_the_next_renewal_credits_the_new_plans_hours(
        self, localstripe, settings, subscribed, account, smaller_plan, send
    ):
        first_invoice = subscribed.payments.get().stripe_invoice_id
        assert subscribed.account.stripe_customer_id and subscribed.plan  # read here, not on the proxy's thread

        def downgraded(sent):
            remote = samples.subscription(subscribed, price_id=sent[PRICE_SENT])
            return 200, remote | {"latest_invoice": first_invoice}  # nothing invoiced now

        with stripe_billing(localstripe, settings) as stripe:
            stripe.answer(self.update_path(subscribed), downgraded)
            subscription, payment = subscription_plan_change(subscription=subscribed, plan_id=smaller_plan.pk)

        [sent] = stripe.sent[self.update_path(subscribed)]
        assert sent["proration_behavior"] == "none" and "payment_behavior" not in sent
        assert (subscription.plan, payment) == (smaller_plan, None)
        assert Payment.objects.count() == 1 and balance(account) == 480
        assert not [line for line in stripe.proxy.seen if line.startswith(("GET /v1/invoices", "POST /v1/invoices"))]

        next_period = samples.next_period(subscription)
        renewal = samples.invoice(subscription, period=next_period, amount_cents=5900)
        with stripe_billing(localstripe, settings) as stripe:
            stripe.has(renewal, samples.subscription(subscription, period=next_period))
            send(samples.event("invoice.paid", renewal))

        lot = Payment.objects.get(stripe_invoice_id=renewal["id"]).lot
        renewed_at = datetime.fromtimestamp(next_period[0], tz=UTC)
        assert (lot.minutes_purchased, lot.price_cents, lot.name) == (240, 5900, f"Monthly 4 h, {month_of(renewed_at)}")
        assert balance(account) == 480 + 240

    def test_the_plans_offered_are_on_sale_of_the_same_period_and_not_its_own(
        self, subscribed, bigger_plan, smaller_plan
    ):
        make_subscription_plan("Weekly 2 h", minutes=120, price_cents=2900, interval="week")
        make_subscription_plan("Old monthly", is_active=False)
        make_plan("Standard package")

        assert set(plan_change_options(subscription=subscribed)) == {bigger_plan, smaller_plan}

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ("own", "already on this plan"),
            ("weekly", NOT_FOR_SALE),
            ("inactive", NOT_FOR_SALE),
            ("package", NOT_FOR_SALE),
        ],
    )
    def test_a_plan_it_cannot_move_to_is_refused_and_nothing_is_sent(
        self, localstripe, settings, subscribed, target, message
    ):
        targets = {
            "own": lambda: subscribed.plan,
            "weekly": lambda: make_subscription_plan("Weekly 2 h", interval="week"),
            "inactive": lambda: make_subscription_plan("Old monthly", is_active=False),
            "package": make_plan,
        }
        plan_id = targets[target]().pk
        with stripe_billing(localstripe, settings) as stripe, pytest.raises(SubscriptionRefused, match=message):
            subscription_plan_change(subscription=subscribed, plan_id=plan_id)

        assert not [line for line in stripe.proxy.seen if line.startswith("POST")]

    def test_a_subscription_that_is_not_active_cannot_change_plan(self, subscribed, bigger_plan):
        Subscription.objects.filter(pk=subscribed.pk).update(status=Status.PAST_DUE)
        subscribed.refresh_from_db()

        with pytest.raises(SubscriptionRefused, match="Only an active subscription"):
            subscription_plan_change(subscription=subscribed, plan_id=bigger_plan.pk)


class TestPeriods:
    @pytest.mark.parametrize(
        ("moment", "periods", "expected"),
        [
            (datetime(2026, 12, 1, 9, tzinfo=UTC), 1, datetime(2027, 1, 1, 9, tzinfo=UTC)),
            (datetime(2027, 1, 31, 9, tzinfo=UTC), 1, datetime(2027, 2, 28, 9, tzinfo=UTC)),  # as Stripe bills
            (datetime(2027, 1, 31, 9, tzinfo=UTC), 2, datetime(2027, 3, 31, 9, tzinfo=UTC)),
            (datetime(2026, 11, 15, 9, tzinfo=UTC), 2, datetime(2027, 1, 15, 9, tzinfo=UTC)),
            (datetime(2026, 12, 1, 9, tzinfo=UTC), 0, datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ],
    )
    def test_a_month_is_a_calendar_month(self, moment, periods, expected):
        assert period_after(moment, "month", periods) == expected

    def test_a_week_is_seven_days(self):
        assert period_after(datetime(2026, 12, 28, tzinfo=UTC), "week", 2) == datetime(2027, 1, 11, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("remaining", "whole", "expected"),
        [(30, 30, 240), (15, 30, 120), (1, 30, 8), (0, 30, 0), (45, 30, 240), (-5, 30, 0), (10, 0, 0)],
    )
    def test_prorated_minutes_are_the_share_of_the_period_left(self, remaining, whole, expected):
        assert prorated_minutes(240, remaining_seconds=remaining, period_seconds=whole) == expected


class TestRefundOfAPeriod:
    def test_a_console_refund_of_the_first_invoice_takes_its_unused_hours_back(self, localstripe, subscribed, account):
        payment = subscribed.payments.get()
        use(account, 48)

        refund = refunds.refund_issue(
            payment=payment, amount_cents=4950, minutes=240, reason="Half the month missed", actor=make_staff()
        )

        assert refund.status == "succeeded"
        [at_stripe_refund] = localstripe.get("/v1/refunds", payment_intent=payment.stripe_payment_intent_id)["data"]
        assert at_stripe_refund["amount"] == 4950
        assert refund.minutes_reversed == 240
        assert balance(account) == 480 - 48 - 240
        assert refund.credit_note.snapshot["corrects"] == payment.receipt.number


class TestReconciliation:
    def later(self, minutes):
        return time_machine.travel(timezone.now() + timedelta(minutes=minutes))

    def test_a_first_invoice_paid_whose_answer_and_events_were_lost_is_credited_once(
        self, localstripe, settings, account, plan
    ):
        add_card(account, localstripe)
        with answers_lost(localstripe, settings, r"^GET /v1/invoices/") as proxy:
            subscription = subscribe(account, plan)
        assert proxy.dropped >= 1
        assert subscription.status == Status.ACTIVE  # Stripe said so; the invoice's answer never came
        assert not Lot.objects.exists()

        subscriptions_reconcile()
        subscriptions_reconcile()

        [payment] = subscription.payments.all()
        assert payment.stripe_invoice_id == at_stripe(localstripe, subscription)["latest_invoice"]
        assert (payment.status, payment.lot.minutes_purchased) == (Payment.Status.SUCCEEDED, 480)
        assert balance(account) == 480

    def test_a_starting_subscription_whose_answer_was_lost_is_found_by_its_metadata_and_settled(
        self, localstripe, settings, account, plan
    ):
        add_card(account, localstripe)
        with answers_lost(localstripe, settings, r"^POST /v1/subscriptions$"):
            subscription = subscribe(account, plan)
        assert subscription.status == Status.STARTING and subscription.stripe_subscription_id is None

        subscriptions_reconcile()  # too soon: its request may still be running
        subscription.refresh_from_db()
        assert subscription.status == Status.STARTING
        with self.later(4):
            subscriptions_reconcile()

        subscription.refresh_from_db()
        [made] = stripe_subscriptions(localstripe)
        assert (subscription.status, subscription.stripe_subscription_id) == (Status.ACTIVE, made["id"])
        assert subscription.payments.get().lot.minutes_purchased == 480
        assert balance(account) == 480

    def test_a_starting_subscription_stripe_never_made_is_given_up_after_an_hour(
        self, localstripe, settings, account, plan
    ):
        add_card(account, localstripe)
        proxy = LossyProxy(
            localstripe.url, canned={r"^POST /v1/subscriptions$": (500, {"error": {"type": "api_error"}})}
        )
        settings.STRIPE_API_BASE = proxy.url
        try:
            subscription = subscribe(account, plan)
        finally:
            proxy.close()
            settings.STRIPE_API_BASE = localstripe.url
        assert subscription.status == Status.STARTING  # a 500 may have made it: we cannot tell yet

        with self.later(30):
            subscriptions_reconcile()
        subscription.refresh_from_db()
        assert subscription.status == Status.STARTING
        with self.later(61):
            subscriptions_reconcile()

        subscription.refresh_from_db()
        assert (subscription.status, subscription.failure_message) == (Status.INCOMPLETE_EXPIRED, NOT_STARTED)
        assert stripe_subscriptions(localstripe) == []
        assert subscribe(account, plan).status == Status.ACTIVE

    def test_a_first_invoice_left_waiting_for_3d_secure_is_cancelled_after_a_day(self, localstripe, account, plan):
        subscription = subscribe(account, plan, localstripe, "4000002500003155")

        with self.later(60):
            subscriptions_reconcile()
        subscription.refresh_from_db()
        assert subscription.status == Status.INCOMPLETE
        with self.later(24 * 60):
            subscriptions_reconcile()

        subscription.refresh_from_db()
        assert subscription.status == Status.INCOMPLETE_EXPIRED
        assert at_stripe(localstripe, subscription)["status"] == "canceled"
        assert not Lot.objects.exists()

    def test_a_3d_secure_completed_at_stripe_but_never_told_us_is_credited(self, localstripe, account, plan):
        subscription = subscribe(account, plan, localstripe, "4000002500003155")
        waiting = subscription_open_payment(subscription=subscription)
        localstripe.browser_authenticate(
            stripe_gateway.payment_intent_retrieve(waiting.stripe_payment_intent_id).client_secret, success=True
        )  # the student closed the tab before the page heard back

        subscriptions_reconcile()

        subscription.refresh_from_db()
        assert subscription.status == Status.ACTIVE
        assert subscription.payments.get().lot.minutes_purchased == 480

    def test_a_3d_secure_failed_at_stripe_but_never_told_us_ends_it_as_not_started(self, localstripe, account, plan):
        subscription = subscribe(account, plan, localstripe, "4000002500003155")
        waiting = subscription_open_payment(subscription=subscription)
        localstripe.browser_authenticate(payments.payment_client_secret(payment=waiting), success=False)

        subscriptions_reconcile()

        subscription.refresh_from_db()
        assert (subscription.status, subscription.failure_message) == (
            Status.INCOMPLETE_EXPIRED,
            "The card's authentication (3-D Secure) failed.",
        )
        assert at_stripe(localstripe, subscription)["status"] == "canceled"
        assert not Lot.objects.exists()

    def test_a_customer_stripe_deleted_is_not_listed(self, localstripe, settings, subscribed, account, caplog):
        customer_forget(account=account)  # customer.deleted: its id is gone
        proxy = LossyProxy(localstripe.url)
        settings.STRIPE_API_BASE = proxy.url
        try:
            subscriptions_reconcile()
        finally:
            proxy.close()
            settings.STRIPE_API_BASE = localstripe.url

        assert not [line for line in proxy.seen if line.startswith("GET /v1/invoices")]
        assert "Could not reconcile" not in caplog.text

    def test_after_it_every_paid_invoice_at_stripe_has_exactly_one_credited_payment(self, localstripe, settings, plan):
        normal = subscribe(make_student(), plan, localstripe)
        lost_invoice_account = make_student()
        add_card(lost_invoice_account, localstripe)
        lost_start_account = make_student()
        add_card(lost_start_account, localstripe)
        with answers_lost(localstripe, settings, r"^GET /v1/invoices/"):
            subscribe(lost_invoice_account, plan)
        with answers_lost(localstripe, settings, r"^POST /v1/subscriptions$"):
            subscribe(lost_start_account, plan)
        three_d_secure = subscribe(make_student(), plan, localstripe, "4000002500003155")
        waiting = subscription_open_payment(subscription=three_d_secure)
        localstripe.browser_authenticate(
            stripe_gateway.payment_intent_retrieve(waiting.stripe_payment_intent_id).client_secret, success=True
        )
        declined = subscribe(make_student(), plan, localstripe, "4000000000000341")

        with self.later(4):
            subscriptions_reconcile()
            subscriptions_reconcile()

        customers = set(Subscription.objects.values_list("account__stripe_customer_id", flat=True))
        paid = [
            invoice["id"]
            for customer in customers
            for invoice in localstripe.get("/v1/invoices", customer=customer)["data"]
            if invoice["status"] == "paid"
        ]
        assert len(paid) == 4  # all but the declined one
        for invoice_id in paid:
            [payment] = Payment.objects.filter(stripe_invoice_id=invoice_id)
            assert payment.status == Payment.Status.SUCCEEDED and payment.lot is not None
        assert Lot.objects.count() == Payment.objects.filter(lot__isnull=False).count() == 4
        assert Subscription.objects.filter(status=Status.ACTIVE).count() == 4
        assert declined.payments.get().lot is None
        assert normal.payments.count() == 1
