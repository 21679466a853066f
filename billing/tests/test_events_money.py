"""Payment, refund, dispute and fraud events: each applied exactly once, in any order."""

import random

import pytest

from billing import events, samples
from billing.models import Dispute, FraudFlag, LedgerEntry, Payment, Refund, WebhookEvent
from billing.tests.builders import make_paid_payment, use
from billing.tests.network import charge_answers_lost

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(localstripe):
    payment = make_paid_payment(localstripe)
    assert payment.status == "succeeded" and payment.lot.minutes_remaining == 600
    return payment


def lot_minutes(payment):
    payment.lot.refresh_from_db()
    return payment.lot.minutes_remaining


def stripe_intent_event(localstripe, payment, event_type="payment_intent.succeeded"):
    intent = localstripe.get(f"/v1/payment_intents/{payment.stripe_payment_intent_id}")
    return samples.event(event_type, intent)


class TestPaymentIntentEvents:
    def test_a_charge_whose_answer_was_lost_is_settled_by_the_webhook_once(self, localstripe, settings, send):
        with charge_answers_lost(localstripe, settings):
            payment = make_paid_payment(localstripe)
        assert payment.status == "processing"
        [intent] = localstripe.payment_intents()
        succeeded = samples.event("payment_intent.succeeded", intent)

        event = send(*[succeeded] * 5)[-1]

        payment.refresh_from_db()
        assert event.status == "processed"
        assert payment.status == "succeeded" and payment.stripe_payment_intent_id == intent["id"]
        assert LedgerEntry.objects.filter(kind="credit").count() == 1

    def test_an_event_is_applied_as_stripe_has_the_intent_now_not_as_the_event_says(self, localstripe, settings, send):
        with charge_answers_lost(localstripe, settings):
            payment = make_paid_payment(localstripe)
        [intent] = localstripe.payment_intents()
        stale = samples.event("payment_intent.payment_failed", {**intent, "status": "requires_payment_method"})

        [event] = send(stale)

        payment.refresh_from_db()
        assert event.status == "processed"
        assert payment.status == "succeeded"  # Stripe says succeeded: the stale failure is not believed
        assert LedgerEntry.objects.filter(kind="credit").count() == 1

    def test_a_late_failure_event_does_not_undo_a_success(self, localstripe, paid, send):
        [event] = send(stripe_intent_event(localstripe, paid, "payment_intent.payment_failed"))

        paid.refresh_from_db()
        assert event.status == "processed" and paid.status == "succeeded"
        assert LedgerEntry.objects.filter(kind="credit").count() == 1

    def test_an_intent_that_is_not_ours_is_ignored(self, localstripe, send):
        foreign = {"id": "pi_foreign", "object": "payment_intent", "status": "succeeded", "metadata": {}}

        [event] = send(samples.event("payment_intent.succeeded", foreign))

        assert event.status == "ignored"
        assert not Payment.objects.exists()


class TestRefundEvents:
    def test_a_full_refund_in_the_dashboard_takes_the_unused_hours_back_once(self, paid, send):
        use(paid.account, 60)
        refund = samples.refund(paid)
        refunded = samples.event("charge.refunded", samples.charge_refunded(paid, [refund]))
        also_announced = samples.event("refund.created", refund)

        send(refunded, refunded, also_announced)

        [recorded] = Refund.objects.all()
        assert (recorded.amount_cents, recorded.minutes_reversed, recorded.minutes_short) == (15000, 540, 60)
        assert lot_minutes(paid) == 0
        assert LedgerEntry.objects.filter(kind="reversal").count() == 1

    def test_a_partial_refund_takes_back_its_share_of_the_hours(self, paid, send):
        send(samples.event("refund.created", samples.refund(paid, amount_cents=5000)))

        assert Refund.objects.get().minutes_reversed == 200  # a third of the money, a third of 10 h
        assert lot_minutes(paid) == 400

    def test_a_refund_that_later_fails_gives_the_hours_back(self, paid, send):
        refund = samples.refund(paid, amount_cents=7500)
        failed = {**refund, "status": "failed"}

        send(samples.event("refund.created", refund), samples.event("refund.updated", failed))

        assert lot_minutes(paid) == 600
        assert Refund.objects.get().status == "failed"

    def test_a_failed_refund_stays_failed_when_a_stale_pending_arrives_after(self, paid, send):
        refund = samples.refund(paid, amount_cents=7500, status="pending")

        send(
            samples.event("refund.updated", {**refund, "status": "failed"}),
            samples.event("refund.created", refund),
            samples.event("charge.refunded", samples.charge_refunded(paid, [refund])),
        )

        assert lot_minutes(paid) == 600
        assert Refund.objects.get().status == "failed"

    def test_a_refund_before_the_payment_is_settled_waits_for_it(self, localstripe, settings, send):
        with charge_answers_lost(localstripe, settings):
            payment = make_paid_payment(localstripe)
        [intent] = localstripe.payment_intents()
        Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id=intent["id"])
        payment.refresh_from_db()
        settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nor can Stripe tell us yet

        [event] = send(samples.event("refund.created", samples.refund(payment)))

        assert event.status == "waiting"
        assert not Refund.objects.exists()
        settings.STRIPE_API_BASE = localstripe.url
        WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=None)
        assert events.event_process(event_id=event.pk).status == "processed"
        payment.refresh_from_db()
        assert payment.status == "succeeded" and lot_minutes(payment) == 0  # credited, then refunded

    def test_a_signed_event_with_a_broken_object_fails_without_harm(self, paid, send):
        broken = samples.refund(paid)
        del broken["amount"]

        [event] = send(samples.event("refund.created", broken))

        assert event.status == "failed" and "KeyError" in event.last_error
        assert lot_minutes(paid) == 600

    def test_a_refund_for_a_payment_we_do_not_know_waits(self, paid, send):
        paid.stripe_payment_intent_id = "pi_not_yet_known"
        unknown = samples.refund(paid)
        Payment.objects.filter(pk=paid.pk).update(stripe_payment_intent_id="pi_known")

        [event] = send(samples.event("refund.created", unknown))

        assert event.status == "waiting" and event.next_attempt_at is not None
        assert "pi_not_yet_known" in event.last_error
        assert not Refund.objects.exists()


class TestDisputeEvents:
    def dispute_story(self, paid, outcome):
        dispute_id = "dp_story"
        return [
            samples.event("charge.dispute.created", samples.dispute(paid, dispute_id=dispute_id)),
            samples.event(
                "charge.dispute.funds_withdrawn", samples.dispute(paid, withdrawn=True, dispute_id=dispute_id)
            ),
            samples.event(
                "charge.dispute.closed" if outcome == "lost" else "charge.dispute.funds_reinstated",
                samples.dispute(paid, status=outcome, withdrawn=True, dispute_id=dispute_id),
            ),
        ]

    def test_created_holds_nothing_withdrawn_holds_the_unused_hours(self, paid, send):
        use(paid.account, 100)
        created, withdrawn, _ = self.dispute_story(paid, "won")

        send(created)
        assert lot_minutes(paid) == 500
        send(withdrawn, withdrawn)

        dispute = Dispute.objects.get()
        assert (dispute.minutes_held, dispute.minutes_short, dispute.funds_withdrawn) == (500, 100, True)
        assert dispute.evidence_due_by is not None
        assert lot_minutes(paid) == 0

    def test_a_won_dispute_releases_the_held_hours(self, paid, send):
        send(*self.dispute_story(paid, "won"))

        dispute = Dispute.objects.get()
        assert dispute.closed and dispute.status == "won" and dispute.minutes_held == 0
        assert lot_minutes(paid) == 600
        assert list(LedgerEntry.objects.filter(lot=paid.lot).values_list("kind", "minutes")) == [
            ("credit", 600),
            ("dispute_hold", -600),
            ("dispute_release", 600),
        ]

    def test_a_lost_dispute_keeps_the_hours_removed(self, paid, send):
        send(*self.dispute_story(paid, "lost"))

        assert Dispute.objects.get().closed
        assert lot_minutes(paid) == 0

    def test_an_update_after_a_won_dispute_holds_nothing_again(self, paid, send):
        created, withdrawn, _ = self.dispute_story(paid, "won")
        reinstated_while_open = samples.event(
            "charge.dispute.funds_reinstated", samples.dispute(paid, status="under_review", dispute_id="dp_story")
        )
        later_update = samples.event(
            "charge.dispute.updated",
            samples.dispute(paid, status="under_review", withdrawn=True, reinstated=True, dispute_id="dp_story"),
        )

        send(created, withdrawn, reinstated_while_open, later_update)

        assert lot_minutes(paid) == 600
        assert LedgerEntry.objects.filter(kind="dispute_hold").count() == 1

    def test_dispute_events_in_reverse_order_end_the_same(self, paid, send):
        send(*reversed(self.dispute_story(paid, "lost")))

        dispute = Dispute.objects.get()
        assert dispute.status == "lost" and dispute.closed
        assert lot_minutes(paid) == 0
        assert LedgerEntry.objects.filter(kind="dispute_hold").count() == 1


class TestFraudWarnings:
    def test_an_early_fraud_warning_raises_one_flag(self, paid, send):
        warning = samples.event("radar.early_fraud_warning.created", samples.early_fraud_warning(paid))

        send(warning, warning)

        flag = FraudFlag.objects.get()
        assert (flag.payment, flag.account, flag.status, flag.fraud_type) == (
            paid,
            paid.account,
            "open",
            "made_with_stolen_card",
        )


def test_a_storm_of_a_thousand_deliveries_has_each_effect_once(localstripe, send):
    paid = [make_paid_payment(localstripe) for _ in range(5)]
    refunds = [
        samples.refund(payment, amount_cents=100, refund_id=f"re_{payment.pk}_{n}")
        for payment in paid
        for n in range(80)
    ]
    # Each refund told twice under different event ids (created, then updated), and some
    # deliveries repeated: handler idempotency and intake deduplication both at work.
    distinct = [samples.event("refund.created", refund) for refund in refunds]
    distinct += [samples.event("refund.updated", refund) for refund in refunds]
    deliveries = distinct + random.Random(7).sample(distinct, 200)
    random.Random(8).shuffle(deliveries)
    assert len(deliveries) == 1000

    send(*deliveries)

    assert WebhookEvent.objects.count() == 800
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Refund.objects.count() == LedgerEntry.objects.filter(kind="reversal").count() == 400
    for payment in paid:
        assert lot_minutes(payment) == 600 - 80 * 4  # 100 cents of 15000 is 4 minutes of 600
