"""Subscription and invoice events: each paid period credited exactly once, whatever the order,
repetition or timing of `invoice.*` and `customer.subscription.*` events; dunning; refunds and
disputes of a period as of any payment.

The first period is really paid at localstripe. Renewals, failed renewals and Stripe's cancel after
its retries never happen there (it has no clock): their invoices, PaymentIntents and subscriptions
are served at the HTTP boundary (builders.StripeBilling) in Stripe's 2026-10-28 shapes, and their
events are signed and posted to the webhook endpoint as Stripe would.
"""

import itertools
import secrets
from datetime import UTC, datetime

import pytest

from alerts.models import Notification
from alerts.notifications import alerts_scan
from billing import payments, samples, stripe_gateway
from billing.errors import SubscriptionRefused
from billing.formatting import date_text
from billing.models import Dispute, LedgerEntry, Lot, Payment, Receipt, Refund, Subscription, WebhookEvent
from billing.subscriptions import (
    period_after,
    subscription_cancel_now,
    subscription_open_payment,
    subscription_pay_now,
    subscription_payment_refresh,
)
from billing.tests.builders import (
    add_card,
    make_staff,
    make_student,
    make_subscription_plan,
    stripe_billing,
    subscribe,
    use,
)
from billing.tests.network import LossyProxy

pytestmark = pytest.mark.django_db

Status = Subscription.Status


@pytest.fixture
def plan():
    return make_subscription_plan("Monthly 8 h", minutes=480, price_cents=9900)


@pytest.fixture
def account():
    return make_student()


@pytest.fixture
def subscribed(localstripe, account, plan):
    subscription = subscribe(account, plan, localstripe)
    assert subscription.status == Status.ACTIVE and subscription.payments.get().lot.minutes_purchased == 480
    return subscription


@pytest.fixture
def stripe(localstripe, settings):
    with stripe_billing(localstripe, settings) as billing:
        yield billing


def renewal(subscription, **fields):
    """Stripe's invoice for the subscription's next period (paid, unless `status` says otherwise)."""
    return samples.invoice(subscription, period=samples.next_period(subscription), **fields)


def renewed(stripe, subscription, **fields):
    """Stripe renews: it has the next period's invoice, and the subscription in that period."""
    invoice = renewal(subscription, **fields)
    subscription_status = "active" if invoice["status"] == "paid" else "past_due"
    stripe.has(invoice, samples.subscription(subscription, status=subscription_status, period=period_of(invoice)))
    return invoice


def period_of(invoice):
    line = invoice["lines"]["data"][0]
    return line["period"]["start"], line["period"]["end"]


def intent_of(invoice):
    return invoice["payments"]["data"][0]["payment"]["payment_intent"]


def declined_intent(invoice, *, code="insufficient_funds"):
    """The PaymentIntent of an invoice whose attempt the bank declined, as Stripe shows it."""
    return {
        "id": intent_of(invoice),
        "object": "payment_intent",
        "amount": invoice["amount_due"],
        "currency": invoice["currency"],
        "status": "requires_payment_method",
        "client_secret": f"{intent_of(invoice)}_secret_{secrets.token_hex(8)}",
        "payment_method": None,
        "metadata": {},
        "last_payment_error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": code,
            "message": "Your card has insufficient funds.",
        },
    }


def paid_on_retry(invoice):
    """The same invoice paid by Stripe's retry, with a new PaymentIntent listed first (2025-03-31 on)."""
    paid = dict(invoice, status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
    retry = {
        **invoice["payments"]["data"][0],
        "id": f"inpay_{secrets.token_hex(12)}",
        "status": "paid",
        "amount_paid": invoice["amount_due"],
        "payment": {"type": "payment_intent", "payment_intent": f"pi_{secrets.token_hex(12)}"},
    }
    return paid | {"payments": {**invoice["payments"], "data": [retry, *invoice["payments"]["data"]]}}


def balance(account):
    account.refresh_from_db()
    return account.balance_minutes


def month_of(timestamp):
    return datetime.fromtimestamp(timestamp, tz=UTC).astimezone().strftime("%B %Y")


def payment_of(invoice):
    return Payment.objects.get(stripe_invoice_id=invoice["id"])


class TestRenewals:
    def test_five_deliveries_of_invoice_paid_credit_the_period_once(self, subscribed, account, stripe, send):
        invoice = renewed(stripe, subscribed)

        delivered = send(*[samples.event("invoice.paid", invoice) for _ in range(5)])

        assert [event.status for event in delivered] == ["processed"] * 5
        payment = payment_of(invoice)
        start, end = period_of(invoice)
        assert (payment.kind, payment.status, payment.subscription) == ("subscription", "succeeded", subscribed)
        assert payment.lot.name == f"Monthly 8 h, {month_of(start)}"
        assert payment.lot.expires_at == period_after(datetime.fromtimestamp(end, tz=UTC), "month", 1)
        assert Lot.objects.count() == 2 and LedgerEntry.objects.filter(kind="credit").count() == 2
        assert balance(account) == 960
        subscribed.refresh_from_db()
        assert int(subscribed.current_period_end.timestamp()) == end  # the subscription moved on

    def test_invoice_paid_and_payment_succeeded_for_one_invoice_credit_once(self, subscribed, account, stripe, send):
        invoice = renewed(stripe, subscribed)

        send(samples.event("invoice.paid", invoice), samples.event("invoice.payment_succeeded", invoice))

        assert Payment.objects.filter(stripe_invoice_id=invoice["id"]).count() == 1
        assert balance(account) == 960

    def test_each_renewal_gets_its_own_numbered_receipt_naming_its_period(self, subscribed, stripe, send):
        invoice = renewed(stripe, subscribed)

        send(samples.event("invoice.paid", invoice))

        first, second = Receipt.objects.filter(kind=Receipt.Kind.RECEIPT).order_by("sequence")
        assert second.sequence == first.sequence + 1
        assert second.payment == payment_of(invoice)
        start, end = (datetime.fromtimestamp(moment, tz=UTC) for moment in period_of(invoice))
        assert second.snapshot["period"] == f"{date_text(start)} – {date_text(end)}"
        assert second.snapshot["description"] == f"Monthly 8 h, {month_of(period_of(invoice)[0])}: 8 h of tutoring"

    def test_a_renewal_stripe_shows_no_copy_of_is_applied_from_the_signed_event(self, subscribed, account, send):
        invoice = renewal(subscribed)  # the stand-in never made it: its GET answers 404

        send(*[samples.event("invoice.paid", invoice)] * 2, samples.event("invoice.payment_succeeded", invoice))

        assert payment_of(invoice).lot.minutes_purchased == 480
        assert balance(account) == 960

    def test_an_invoice_that_is_not_a_subscriptions_is_ignored(self, subscribed, send):
        one_off = renewal(subscribed)
        one_off["parent"] = None

        [event] = send(samples.event("invoice.paid", one_off))

        assert event.status == "ignored"
        assert not Payment.objects.filter(stripe_invoice_id=one_off["id"]).exists()

    def test_invoice_upcoming_adds_nothing(self, subscribed, account, send):
        [event] = send(samples.event("invoice.upcoming", renewal(subscribed, status="draft")))

        assert event.status == "ignored" and balance(account) == 480


class TestOrder:
    def test_a_payment_failed_arriving_after_paid_leaves_it_paid(self, subscribed, account, stripe, send):
        invoice = renewed(stripe, subscribed)
        stale = renewal(subscribed, status="open", invoice_id=invoice["id"], payment_intent_id=intent_of(invoice))

        send(samples.event("invoice.paid", invoice), samples.event("invoice.payment_failed", stale))

        subscribed.refresh_from_db()
        assert payment_of(invoice).status == "succeeded"
        assert (subscribed.status, subscribed.failure_message) == (Status.ACTIVE, "")
        assert balance(account) == 960

    def test_a_stale_failure_is_applied_as_stripe_has_the_invoice_now(self, subscribed, account, stripe, send):
        invoice = renewed(stripe, subscribed)  # paid, by the time the event is read
        stale = renewal(subscribed, status="open", invoice_id=invoice["id"], payment_intent_id=intent_of(invoice))

        [event] = send(samples.event("invoice.payment_failed", stale))

        assert event.status == "processed"
        assert payment_of(invoice).status == "succeeded"
        assert balance(account) == 960

    @pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::5])
    def test_the_events_of_a_renewal_that_failed_then_was_paid_end_the_same_in_any_order(
        self, subscribed, account, send, order
    ):
        # The stand-in has none of these objects: each event's own copy is applied, and none moves back.
        failed = renewal(subscribed, status="open")
        paid = dict(failed, status="paid", amount_paid=failed["amount_due"], amount_remaining=0)
        story = [
            samples.event("invoice.finalized", dict(failed, attempt_count=0, attempted=False)),
            samples.event("invoice.payment_failed", failed),
            samples.event("invoice.paid", paid),
            samples.event("invoice.payment_succeeded", paid),
        ]

        send(*[story[index] for index in order])

        subscribed.refresh_from_db()
        assert payment_of(paid).status == "succeeded"
        assert (subscribed.status, subscribed.failure_message) == (Status.ACTIVE, "")
        assert Payment.objects.filter(stripe_invoice_id=paid["id"]).count() == 1
        assert balance(account) == 960


class TestRenewalBeforeCreation:
    """An invoice event may come before the portal knows the Stripe subscription it belongs to (the
    answer to its creation was lost): Stripe's subscription names our row in its metadata."""

    @pytest.fixture
    def starting(self, localstripe, settings, account, plan):
        add_card(account, localstripe)
        proxy = LossyProxy(localstripe.url, drop_response=r"^POST /v1/subscriptions$")
        settings.STRIPE_API_BASE = proxy.url
        try:
            subscription = subscribe(account, plan)
        finally:
            proxy.close()
            settings.STRIPE_API_BASE = localstripe.url
        assert subscription.status == Status.STARTING and subscription.stripe_subscription_id is None
        return subscription

    def test_its_paid_invoice_links_the_subscription_and_credits_the_period_once(
        self, localstripe, starting, account, send
    ):
        [invoice] = localstripe.get("/v1/invoices", customer=account.stripe_customer_id)["data"]
        assert invoice["status"] == "paid"

        send(samples.event("invoice.payment_succeeded", invoice), samples.event("invoice.payment_succeeded", invoice))

        starting.refresh_from_db()
        assert (starting.status, starting.stripe_subscription_id) == (Status.ACTIVE, invoice["subscription"])
        assert payment_of(invoice).lot.minutes_purchased == 480
        assert balance(account) == 480

    def test_a_subscription_made_elsewhere_for_the_same_customer_is_ignored(self, localstripe, subscribed, send):
        price = subscribed.plan.stripe_price_id
        elsewhere = localstripe.post(
            "/v1/subscriptions", customer=subscribed.account.stripe_customer_id, **{"items[0][plan]": price}
        )
        invoice = localstripe.get(f"/v1/invoices/{elsewhere['latest_invoice']}")

        [event] = send(samples.event("invoice.paid", invoice))

        assert event.status == "ignored"
        assert not Payment.objects.filter(stripe_invoice_id=invoice["id"]).exists()

    def test_metadata_naming_another_students_row_credits_nothing(self, localstripe, starting, send):
        intruder = make_student()
        add_card(intruder, localstripe)
        price = starting.plan.stripe_price_id
        made = localstripe.post(
            "/v1/subscriptions",
            customer=intruder.stripe_customer_id,
            **{
                "items[0][plan]": price,
                "metadata[subscription_id]": str(starting.pk),
                "metadata[account_id]": str(intruder.pk),
            },
        )
        invoice = localstripe.get(f"/v1/invoices/{made['latest_invoice']}")

        [event] = send(samples.event("invoice.paid", invoice))

        assert event.status == "waiting"  # not ours yet as far as we can tell: retried, then an orphan
        starting.refresh_from_db()
        assert starting.stripe_subscription_id is None
        assert not Payment.objects.filter(stripe_invoice_id=invoice["id"]).exists()
        assert not Lot.objects.exists()


class TestDunning:
    def test_a_failed_renewal_makes_it_past_due_with_the_reason_and_adds_no_hours(
        self, subscribed, account, stripe, send
    ):
        invoice = renewed(stripe, subscribed, status="open")
        stripe.has(declined_intent(invoice))

        send(samples.event("invoice.payment_failed", invoice))

        subscribed.refresh_from_db()
        payment = payment_of(invoice)
        assert (subscribed.status, subscribed.display_status) == (Status.PAST_DUE, "Past due")
        assert (subscribed.failure_code, subscribed.failure_message) == (
            "insufficient_funds",
            "Your card has insufficient funds.",
        )
        assert (payment.status, payment.lot) == (Payment.Status.FAILED, None)
        assert subscription_open_payment(subscription=subscribed) == payment  # what "pay now" pays
        assert balance(account) == 480

    def test_failed_then_paid_on_stripes_retry_becomes_active_and_credits_once(self, subscribed, account, stripe, send):
        invoice = renewed(stripe, subscribed, status="open")
        stripe.has(declined_intent(invoice))
        send(samples.event("invoice.payment_failed", invoice))

        paid = stripe.has(paid_on_retry(invoice))
        stripe.has(samples.subscription(subscribed, period=period_of(invoice)))
        send(samples.event("invoice.paid", paid), samples.event("invoice.payment_failed", invoice))

        subscribed.refresh_from_db()
        payment = payment_of(invoice)
        assert (subscribed.status, subscribed.failure_code, subscribed.failure_message) == (Status.ACTIVE, "", "")
        assert payment.status == "succeeded" and payment.lot.minutes_purchased == 480
        assert payment.stripe_payment_intent_id == intent_of(paid)  # the retry's intent: what a refund names
        assert subscription_open_payment(subscription=subscribed) is None
        assert balance(account) == 960

    def test_the_student_is_alerted_with_the_reason_until_the_renewal_is_paid(self, subscribed, stripe, send):
        invoice = renewed(stripe, subscribed, status="open")
        stripe.has(declined_intent(invoice))
        send(samples.event("invoice.payment_failed", invoice))

        alerts_scan()

        [alert] = Notification.objects.filter(kind=Notification.Kind.SUBSCRIPTION_PAST_DUE)
        assert alert.recipient == subscribed.account.user
        assert "Your card has insufficient funds." in alert.body and "Pay now" in alert.body
        assert not Notification.objects.filter(kind=Notification.Kind.PAYMENT_FAILED).exists()

        stripe.has(paid_on_retry(invoice), samples.subscription(subscribed, period=period_of(invoice)))
        send(samples.event("invoice.paid", stripe.objects[invoice["id"]]))
        alerts_scan()

        alert.refresh_from_db()
        assert alert.resolved_at is not None

    def test_pay_now_pays_the_open_invoice_with_the_card(self, subscribed, account, stripe, send):
        invoice = renewed(stripe, subscribed, status="open")
        stripe.has(declined_intent(invoice))
        send(samples.event("invoice.payment_failed", invoice))

        def paid_now(sent):
            paid = stripe.has(paid_on_retry(invoice))
            stripe.has(samples.subscription(subscribed, period=period_of(invoice)))
            return 200, paid

        stripe.answer(rf"^POST /v1/invoices/{invoice['id']}/pay$", paid_now)
        payment = subscription_pay_now(subscription=subscribed)

        subscribed.refresh_from_db()
        assert len(stripe.sent[rf"^POST /v1/invoices/{invoice['id']}/pay$"]) == 1
        assert (payment.status, subscribed.status) == ("succeeded", Status.ACTIVE)
        assert balance(account) == 960
        with pytest.raises(SubscriptionRefused, match="nothing to pay"):
            subscription_pay_now(subscription=subscribed)

    def test_canceled_while_past_due_ends_it_and_keeps_the_hours_already_granted(
        self, subscribed, account, stripe, send
    ):
        use(account, 30)
        first_lot = subscribed.payments.get().lot
        invoice = renewed(stripe, subscribed, status="open")
        stripe.has(declined_intent(invoice))
        send(samples.event("invoice.payment_failed", invoice))

        # Stripe's retries are over: it cancels the subscription and closes the invoice.
        canceled = stripe.has(samples.subscription(subscribed, status="canceled"))
        voided = stripe.has(dict(invoice, status="void"))
        send(samples.event("customer.subscription.deleted", canceled), samples.event("invoice.voided", voided))

        subscribed.refresh_from_db()
        assert (subscribed.status, subscribed.display_status, subscribed.live) == (Status.CANCELED, "Ended", False)
        assert subscribed.ended_at is not None
        assert payment_of(invoice).lot is None
        assert subscription_open_payment(subscription=subscribed) is None  # a closed invoice: nothing to pay
        first_lot.refresh_from_db()
        assert (first_lot.minutes_remaining, first_lot.expired_at) == (450, None)  # kept until it expires
        assert balance(account) == 450
        # A late copy saying otherwise does not bring it back.
        stripe.has(samples.subscription(subscribed, status="active"))
        send(samples.event("customer.subscription.updated", samples.subscription(subscribed, status="active")))
        subscribed.refresh_from_db()
        assert subscribed.status == Status.CANCELED

    def test_an_invoice_stripe_closed_unpaid_is_no_longer_offered_to_pay(self, subscribed, account, stripe, send):
        invoice = renewed(stripe, subscribed, status="open")
        stripe.has(declined_intent(invoice))
        send(samples.event("invoice.payment_failed", invoice))

        # Stripe gives up on that invoice but keeps the subscription (its "mark uncollectible" setting).
        stripe.has(dict(invoice, status="uncollectible"), samples.subscription(subscribed, status="active"))
        send(samples.event("invoice.marked_uncollectible", stripe.objects[invoice["id"]]))

        subscribed.refresh_from_db()
        assert (subscribed.status, subscribed.failure_message) == (Status.ACTIVE, "")  # as Stripe has it
        assert subscription_open_payment(subscription=subscribed) is None
        with pytest.raises(SubscriptionRefused, match="nothing to pay"):
            subscription_pay_now(subscription=subscribed)
        assert payment_of(invoice).lot is None and balance(account) == 480

    def test_payment_action_required_hands_the_renewal_to_3d_secure(
        self, localstripe, subscribed, account, stripe, send
    ):
        card = add_card(account, localstripe, "4000002760003184")  # asks for 3-D Secure on every charge
        intent = localstripe.post(
            "/v1/payment_intents",
            amount="9900",
            currency="eur",
            customer=account.stripe_customer_id,
            payment_method=card.stripe_payment_method_id,
            confirm="true",
        )
        assert intent["status"] == "requires_action"
        invoice = renewed(stripe, subscribed, status="open", payment_intent_id=intent["id"])

        send(samples.event("invoice.payment_action_required", invoice))

        payment = payment_of(invoice)
        assert (payment.status, payment.lot) == (Payment.Status.REQUIRES_ACTION, None)
        assert subscription_open_payment(subscription=subscribed) == payment
        assert subscription_pay_now(subscription=subscribed) == payment  # the bank's check is what is missing
        secret = payments.payment_client_secret(payment=payment)  # the same hand-off as a package
        assert secret == intent["client_secret"]

        localstripe.browser_authenticate(secret, success=True)
        stripe.has(dict(invoice, status="paid", amount_paid=9900, amount_remaining=0))
        paid = subscription_payment_refresh(payment=payment)
        send(samples.event("invoice.paid", stripe.objects[invoice["id"]]))

        assert paid.status == "succeeded" and paid.lot.minutes_purchased == 480
        assert Payment.objects.filter(stripe_invoice_id=invoice["id"]).count() == 1
        assert balance(account) == 960


class TestRefundOfAPeriod:
    """A refund or lost dispute of a subscription invoice takes back that period's lot pro rata,
    through the ledger, with a credit note: as for packages."""

    @pytest.fixture
    def renewed_payment(self, subscribed, stripe, send):
        invoice = renewed(stripe, subscribed)
        send(samples.event("invoice.paid", invoice))
        return payment_of(invoice)

    def lot_minutes(self, payment):
        payment.lot.refresh_from_db()
        return payment.lot.minutes_remaining

    def test_a_full_refund_in_the_dashboard_takes_the_periods_lot_back_once(self, renewed_payment, account, send):
        refund = samples.refund(renewed_payment)
        refunded = samples.event("charge.refunded", samples.charge_refunded(renewed_payment, [refund]))

        send(refunded, refunded, samples.event("refund.created", refund))

        [recorded] = Refund.objects.all()
        assert (recorded.payment, recorded.amount_cents, recorded.minutes_reversed) == (renewed_payment, 9900, 480)
        assert self.lot_minutes(renewed_payment) == 0
        assert LedgerEntry.objects.filter(kind="reversal").count() == 1
        assert balance(account) == 480  # the first period's lot is untouched
        credit_note = recorded.credit_note
        assert credit_note.kind == Receipt.Kind.CREDIT_NOTE
        assert credit_note.snapshot["corrects"] == renewed_payment.receipt.number

    def test_a_partial_refund_takes_back_its_share_of_the_periods_hours(self, renewed_payment, send):
        send(samples.event("refund.created", samples.refund(renewed_payment, amount_cents=2475)))

        assert Refund.objects.get().minutes_reversed == 120  # a quarter of the money, a quarter of 8 h
        assert self.lot_minutes(renewed_payment) == 360

    def test_hours_already_used_are_not_taken_back_but_recorded_short(self, subscribed, account, send):
        first = subscribed.payments.get()
        use(account, 100)

        send(samples.event("charge.refunded", samples.charge_refunded(first, [samples.refund(first)])))

        refund = Refund.objects.get()
        assert (refund.minutes_reversed, refund.minutes_short) == (380, 100)
        assert refund.credit_note.snapshot["hours_not_reversed"] == "1.67 h"
        assert balance(account) == 0

    def test_a_lost_dispute_of_a_period_keeps_its_hours_removed(self, renewed_payment, send):
        dispute_id = "dp_period"
        send(
            samples.event("charge.dispute.created", samples.dispute(renewed_payment, dispute_id=dispute_id)),
            samples.event(
                "charge.dispute.funds_withdrawn",
                samples.dispute(renewed_payment, withdrawn=True, dispute_id=dispute_id),
            ),
            samples.event(
                "charge.dispute.closed",
                samples.dispute(renewed_payment, status="lost", withdrawn=True, dispute_id=dispute_id),
            ),
        )

        assert Dispute.objects.get().closed
        assert self.lot_minutes(renewed_payment) == 0


class TestSubscriptionEvents:
    def test_an_update_is_applied_as_stripe_has_the_subscription_now(self, localstripe, subscribed, send):
        localstripe.post(f"/v1/subscriptions/{subscribed.stripe_subscription_id}", cancel_at_period_end="true")
        stale = samples.subscription(subscribed, cancel_at_period_end=False, legacy=True)

        [event] = send(samples.event("customer.subscription.updated", stale))

        subscribed.refresh_from_db()
        assert event.status == "processed"
        assert (subscribed.cancel_at_period_end, subscribed.display_status) == (True, "Cancels at period end")

    def test_a_subscription_that_is_not_ours_is_ignored(self, localstripe, subscribed, send):
        foreign = samples.subscription(subscribed) | {"id": "sub_elsewhere", "metadata": {}}

        [event] = send(samples.event("customer.subscription.created", foreign))

        assert event.status == "ignored"

    def test_a_staff_cancel_and_its_deleted_event_end_it_once(self, localstripe, subscribed, account, send):
        subscription_cancel_now(subscription=subscribed, actor=make_staff(), reason="Asked by email")
        deleted = localstripe.get(f"/v1/subscriptions/{subscribed.stripe_subscription_id}")

        [event] = send(samples.event("customer.subscription.deleted", deleted))

        subscribed.refresh_from_db()
        assert event.status == "processed"
        assert subscribed.status == Status.CANCELED
        assert balance(account) == 480

    def test_every_event_was_stored_once_by_its_id(self, subscribed, stripe, send):
        invoice = renewed(stripe, subscribed)
        event = samples.event("invoice.paid", invoice)

        send(event, event, event)

        assert WebhookEvent.objects.filter(stripe_event_id=event["id"]).count() == 1
        assert stripe_gateway.invoice_read(invoice).subscription_id == subscribed.stripe_subscription_id
