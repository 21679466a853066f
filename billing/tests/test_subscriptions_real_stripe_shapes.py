"""Subscriptions and invoices in the shapes real Stripe sends, both API version 2026-10-28 (the one
stripe-python 16 speaks: the period on the subscription's item, the invoice's subscription under
`parent`, its PaymentIntent under `payments`, a line's price under `pricing`) and the shapes before
2025-03-31 (legacy: what older webhook endpoints and localstripe send). The gateway reads both;
the handlers, fed either, do the same thing. Stripe's answers are served at the HTTP boundary.
"""

import secrets
import time
from datetime import UTC, datetime

import pytest

from billing import samples, stripe_gateway
from billing.errors import ProviderAnswerUnreadable
from billing.models import Payment, Subscription
from billing.subscriptions import period_after, subscription_plan_change
from billing.tests.builders import add_card, make_student, make_subscription_plan, stripe_billing, subscribe

pytestmark = pytest.mark.django_db

Status = Subscription.Status
SHAPES = [pytest.param(False, id="2026-10-28"), pytest.param(True, id="legacy")]


@pytest.fixture
def plan():
    return make_subscription_plan("Monthly 8 h", minutes=480, price_cents=9900)


@pytest.fixture
def subscribed(localstripe, plan):
    subscription = subscribe(make_student(), plan, localstripe)
    assert subscription.status == Status.ACTIVE
    return subscription


@pytest.fixture
def stripe(localstripe, settings):
    with stripe_billing(localstripe, settings) as billing:
        yield billing


def period(days_from, days_to):
    now = int(time.time())
    return now + days_from * 86400, now + days_to * 86400


def intent_id(invoice):
    if "payment_intent" in invoice:
        return invoice["payment_intent"]
    return invoice["payments"]["data"][0]["payment"]["payment_intent"]


def samples_period(row):
    return int(row.current_period_start.timestamp()), int(row.current_period_end.timestamp())


def balance(subscription):
    subscription.account.refresh_from_db()
    return subscription.account.balance_minutes


class TestReadingAnInvoice:
    @pytest.mark.parametrize("legacy", SHAPES)
    def test_either_shape_reads_the_same(self, subscribed, legacy):
        start, end = period(30, 61)
        raw = samples.invoice(subscribed, period=(start, end), payment_intent_id="pi_renewal", legacy=legacy)

        invoice = stripe_gateway.invoice_read(raw)

        assert (invoice.id, invoice.status, invoice.paid) == (raw["id"], "paid", True)
        assert (invoice.customer_id, invoice.subscription_id) == (
            subscribed.account.stripe_customer_id,
            subscribed.stripe_subscription_id,
        )
        assert (invoice.amount_due_cents, invoice.amount_paid_cents, invoice.currency) == (9900, 9900, "EUR")
        assert (invoice.payment_intent_id, invoice.billing_reason, invoice.attempt_count) == (
            "pi_renewal",
            "subscription_cycle",
            1,
        )
        assert invoice.subscription_metadata == {
            "subscription_id": str(subscribed.pk),
            "account_id": str(subscribed.account_id),
        }
        [line] = invoice.lines
        assert (line.price_id, line.amount_cents, line.period_start, line.period_end, line.proration) == (
            subscribed.plan.stripe_price_id,
            9900,
            start,
            end,
            False,
        )
        assert invoice.proration is False

    @pytest.mark.parametrize("legacy", SHAPES)
    def test_a_proration_line_marks_an_upgrades_invoice(self, subscribed, legacy):
        rest = period(0, 10)
        lines = [
            samples.invoice_line(subscribed, amount_cents=-3300, period=rest, proration=True, legacy=legacy),
            samples.invoice_line(
                subscribed, amount_cents=4600, period=rest, price_id="price_bigger", proration=True, legacy=legacy
            ),
        ]
        raw = samples.invoice(subscribed, amount_cents=1300, billing_reason="subscription_update", lines=lines)

        invoice = stripe_gateway.invoice_read(raw)

        assert invoice.proration is True
        assert [(line.price_id, line.amount_cents, line.proration) for line in invoice.lines] == [
            (subscribed.plan.stripe_price_id, -3300, True),
            ("price_bigger", 4600, True),
        ]

    def test_the_newest_of_an_invoices_payments_names_its_payment_intent(self, subscribed):
        raw = samples.invoice(subscribed, payment_intent_id="pi_first_attempt")
        retry = {**raw["payments"]["data"][0], "payment": {"type": "payment_intent", "payment_intent": "pi_retry"}}
        raw["payments"]["data"].insert(0, retry)  # Stripe lists an invoice's payments newest first

        assert stripe_gateway.invoice_read(raw).payment_intent_id == "pi_retry"

    def test_expanded_objects_are_read_by_their_id(self, subscribed):
        raw = samples.invoice(subscribed, legacy=True)
        raw["customer"] = {"id": subscribed.account.stripe_customer_id, "object": "customer"}
        raw["subscription"] = {"id": subscribed.stripe_subscription_id, "object": "subscription"}
        raw["payment_intent"] = {"id": "pi_expanded", "object": "payment_intent", "status": "succeeded"}

        invoice = stripe_gateway.invoice_read(raw)

        assert (invoice.customer_id, invoice.subscription_id, invoice.payment_intent_id) == (
            subscribed.account.stripe_customer_id,
            subscribed.stripe_subscription_id,
            "pi_expanded",
        )

    def test_localstripes_own_invoice_reads_too(self, localstripe, subscribed):
        raw = localstripe.get(f"/v1/invoices/{subscribed.payments.get().stripe_invoice_id}")

        invoice = stripe_gateway.invoice_read(raw)

        assert (invoice.subscription_id, invoice.payment_intent_id, invoice.paid) == (
            subscribed.stripe_subscription_id,
            subscribed.payments.get().stripe_payment_intent_id,
            True,
        )
        assert invoice.lines[0].price_id == subscribed.plan.stripe_price_id

    def test_an_invoice_without_what_we_need_is_unreadable_not_a_crash(self, subscribed):
        raw = samples.invoice(subscribed)
        del raw["amount_due"]

        with pytest.raises(ProviderAnswerUnreadable):
            stripe_gateway.invoice_read(raw)

    def test_an_invoice_retrieved_without_its_payments_is_asked_for_them(self, subscribed, stripe):
        # From 2025-03-31 Stripe lists an invoice's payments only when asked to (expand[]=payments).
        full = samples.invoice(subscribed, payment_intent_id="pi_listed_on_request")
        bare = {key: value for key, value in full.items() if key != "payments"}
        stripe.answer(rf"^GET /v1/invoices/{full['id']}\?.*expand", (200, full))
        stripe.answer(rf"^GET /v1/invoices/{full['id']}$", (200, bare))

        invoice = stripe_gateway.invoice_retrieve(full["id"])

        assert invoice.payment_intent_id == "pi_listed_on_request"
        assert [line for line in stripe.proxy.seen if full["id"] in line] == [
            f"GET /v1/invoices/{full['id']}",
            f"GET /v1/invoices/{full['id']}?expand%5B0%5D=payments",
        ]


class TestReadingASubscription:
    @pytest.mark.parametrize("legacy", SHAPES)
    def test_either_shape_reads_the_same(self, subscribed, legacy):
        start, end = period(30, 61)
        raw = samples.subscription(subscribed, period=(start, end), cancel_at_period_end=True, legacy=legacy)

        remote = stripe_gateway.subscription_read(raw)

        assert (remote.id, remote.status, remote.customer_id) == (
            subscribed.stripe_subscription_id,
            "active",
            subscribed.account.stripe_customer_id,
        )
        assert (remote.price_id, remote.item_id, remote.cancel_at_period_end) == (
            subscribed.plan.stripe_price_id,
            subscribed.stripe_item_id,
            True,
        )
        assert (remote.current_period_start, remote.current_period_end) == (start, end)
        assert remote.metadata == {"subscription_id": str(subscribed.pk), "account_id": str(subscribed.account_id)}

    def test_the_legacy_plans_api_names_the_price_plan(self, localstripe, subscribed):
        raw = localstripe.get(f"/v1/subscriptions/{subscribed.stripe_subscription_id}")
        assert "price" not in raw["items"]["data"][0]  # localstripe speaks the Plans API

        remote = stripe_gateway.subscription_read(raw)

        assert remote.price_id == subscribed.plan.stripe_price_id
        assert remote.latest_invoice_id == subscribed.payments.get().stripe_invoice_id

    def test_an_expanded_latest_invoice_and_customer_are_read_by_their_id(self, subscribed):
        raw = samples.subscription(subscribed)
        raw["latest_invoice"] = {"id": "in_expanded", "object": "invoice"}
        raw["customer"] = {"id": subscribed.account.stripe_customer_id, "object": "customer"}

        remote = stripe_gateway.subscription_read(raw)

        assert (remote.latest_invoice_id, remote.customer_id) == ("in_expanded", subscribed.account.stripe_customer_id)

    def test_a_subscription_without_items_is_unreadable_not_a_crash(self, subscribed):
        raw = samples.subscription(subscribed)
        raw["items"]["data"] = []

        with pytest.raises(ProviderAnswerUnreadable):
            stripe_gateway.subscription_read(raw)


class TestHandlersReadEitherShape:
    @pytest.mark.parametrize("legacy", SHAPES)
    def test_a_renewal_is_credited_once(self, subscribed, stripe, send, legacy):
        next_period = samples.next_period(subscribed)
        invoice = stripe.has(samples.invoice(subscribed, period=next_period, legacy=legacy))
        stripe.has(samples.subscription(subscribed, period=next_period, legacy=legacy))

        send(
            samples.event("invoice.paid", invoice),
            samples.event("invoice.payment_succeeded", invoice),  # what the older API versions send
        )

        payment = Payment.objects.get(stripe_invoice_id=invoice["id"])
        assert (payment.status, payment.lot.minutes_purchased, payment.stripe_payment_intent_id) == (
            "succeeded",
            480,
            intent_id(invoice),
        )
        subscribed.refresh_from_db()
        assert int(subscribed.current_period_end.timestamp()) == next_period[1]
        assert balance(subscribed) == 960

    @pytest.mark.parametrize("legacy", SHAPES)
    def test_a_failed_renewal_makes_it_past_due_with_the_reason(self, subscribed, stripe, send, legacy):
        invoice = stripe.has(
            samples.invoice(subscribed, period=samples.next_period(subscribed), status="open", legacy=legacy)
        )
        stripe.has(
            {
                "id": intent_id(invoice),
                "object": "payment_intent",
                "amount": 9900,
                "currency": "eur",
                "status": "requires_payment_method",
                "client_secret": f"{intent_id(invoice)}_secret_x",
                "payment_method": None,
                "metadata": {},
                "last_payment_error": {"type": "card_error", "code": "expired_card"},
            },
            samples.subscription(subscribed, status="past_due", legacy=legacy),
        )

        send(samples.event("invoice.payment_failed", invoice))

        subscribed.refresh_from_db()
        assert (subscribed.status, subscribed.failure_message) == (Status.PAST_DUE, "Your card has expired.")
        assert balance(subscribed) == 480

    @pytest.mark.parametrize("legacy", SHAPES)
    def test_stripes_cancel_ends_it(self, subscribed, stripe, send, legacy):
        canceled = stripe.has(samples.subscription(subscribed, status="canceled", legacy=legacy))

        send(samples.event("customer.subscription.deleted", canceled))

        subscribed.refresh_from_db()
        assert (subscribed.status, subscribed.ended_at is not None) == (Status.CANCELED, True)

    @pytest.mark.parametrize("legacy", SHAPES)
    def test_an_upgrades_proration_invoice_credits_the_extra_hours(self, localstripe, settings, subscribed, legacy):
        bigger = make_subscription_plan("Monthly 12 h", minutes=720, price_cents=13900)
        start, end = int(subscribed.current_period_start.timestamp()), int(subscribed.current_period_end.timestamp())
        half_left = (start + (end - start) // 2, end)
        old_price = subscribed.plan.stripe_price_id
        assert subscribed.account.stripe_customer_id  # read here: the answer is made on the proxy's thread

        def upgraded(sent):
            new_price = sent["items[0][plan]"]
            lines = [
                samples.invoice_line(
                    subscribed, amount_cents=-4950, period=half_left, price_id=old_price, proration=True, legacy=legacy
                ),
                samples.invoice_line(
                    subscribed, amount_cents=6950, period=half_left, price_id=new_price, proration=True, legacy=legacy
                ),
            ]
            invoice = stripe.has(
                samples.invoice(
                    subscribed, amount_cents=2000, billing_reason="subscription_update", lines=lines, legacy=legacy
                )
            )
            remote = stripe.has(samples.subscription(subscribed, price_id=new_price, legacy=legacy))
            return 200, remote | {"latest_invoice": invoice["id"]}

        with stripe_billing(localstripe, settings) as stripe:
            stripe.answer(rf"^POST /v1/subscriptions/{subscribed.stripe_subscription_id}$", upgraded)
            subscription, payment = subscription_plan_change(subscription=subscribed, plan_id=bigger.pk)

        assert subscription.plan == bigger
        assert (payment.kind, payment.minutes, payment.amount_cents) == (Payment.Kind.PLAN_CHANGE, 120, 2000)
        assert balance(subscribed) == 480 + 120  # 4 h more a month, for half the month


class TestSubscribingAgainstStripesAnswers:
    """localstripe answers subscription create in the legacy shape: here Stripe's 2026-10-28 answer."""

    def test_an_active_subscription_and_its_paid_first_invoice_in_the_new_shapes(self, localstripe, settings, plan):
        account = make_student()
        add_card(account, localstripe)
        account.user  # noqa: B018 - read here: the answer is made on the proxy's thread

        def created(sent):
            start = datetime.now(tz=UTC).replace(microsecond=0)
            row = Subscription(  # the portal's row, as the metadata it sent names it
                pk=int(sent["metadata[subscription_id]"]),
                account=account,
                plan=plan,
                stripe_subscription_id=f"sub_{secrets.token_hex(8)}",
                stripe_item_id=f"si_{secrets.token_hex(8)}",
                current_period_start=start,
                current_period_end=period_after(start, "month", 1),
            )
            price = sent["items[0][plan]"]
            line = samples.invoice_line(row, amount_cents=9900, period=samples_period(row), price_id=price)
            invoice = stripe.has(samples.invoice(row, billing_reason="subscription_create", lines=[line]))
            return 200, samples.subscription(row, price_id=price) | {"latest_invoice": invoice["id"]}

        with stripe_billing(localstripe, settings) as stripe:
            stripe.answer(r"^POST /v1/subscriptions$", created)
            subscription = subscribe(account, plan)

        [sent] = stripe.sent[r"^POST /v1/subscriptions$"]
        assert (sent["customer"], sent["payment_behavior"]) == (account.stripe_customer_id, "allow_incomplete")
        assert subscription.status == Status.ACTIVE
        payment = subscription.payments.get()
        assert (payment.status, payment.lot.minutes_purchased) == ("succeeded", 480)
        assert subscription.current_period_end > subscription.current_period_start
