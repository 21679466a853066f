"""Refunds staff issue from the console: limits checked under the account lock, hours taken back
exactly once whichever answer comes first (our own request's or the webhook's), an audit entry.

Every refund here is really made by localstripe over HTTP. localstripe keeps a refund's metadata
(so the webhook path uses its own refund objects) but ignores Idempotency-Key, so sending a refund
again must not rely on the key: `refund_send` first looks for the refund at Stripe by its metadata.
"""

import pytest

from billing import samples
from billing.errors import ProviderUnavailable
from billing.models import AuditEntry, LedgerEntry, Receipt, Refund
from billing.refunds import RefundRefused, refund_defaults, refund_issue, refund_send
from billing.tests.builders import make_paid_payment, make_staff, use
from billing.tests.concurrency import run_at_once
from billing.tests.network import LossyProxy

pytestmark = pytest.mark.django_db

REASON = "Student moved abroad; agreed on the phone."


@pytest.fixture
def paid(localstripe):
    payment = make_paid_payment(localstripe)
    assert payment.status == "succeeded" and payment.lot.minutes_remaining == 600  # €150.00 for 10 h
    return payment


@pytest.fixture
def staff(db):
    return make_staff()


@pytest.fixture
def answers_lost(localstripe, settings):
    """Inside this block Stripe still makes refunds, but its answers to them never reach us."""
    proxy = LossyProxy(localstripe.url, drop_response=r"^POST /v1/refunds$")
    settings.STRIPE_API_BASE = proxy.url
    yield proxy
    proxy.close()
    settings.STRIPE_API_BASE = localstripe.url


def issue(payment, staff, *, amount_cents=15000, minutes=600, reason=REASON):
    return refund_issue(
        payment=payment,
        amount_cents=amount_cents,
        minutes=minutes,
        reason=reason,
        actor=staff,
        ip_address="203.0.113.5",
    )


def lot_minutes(payment):
    payment.lot.refresh_from_db()
    return payment.lot.minutes_remaining


def stripe_refunds(localstripe, payment):
    return localstripe.get("/v1/refunds", payment_intent=payment.stripe_payment_intent_id)["data"]


def assert_nothing_refunded(localstripe, payment):
    assert not Refund.objects.exists()
    assert not AuditEntry.objects.exists()
    assert stripe_refunds(localstripe, payment) == []
    assert lot_minutes(payment) == 600


class TestIssuing:
    def test_a_full_refund_takes_the_unused_hours_back_and_issues_a_credit_note(self, localstripe, paid, staff):
        use(paid.account, 60)
        defaults = refund_defaults(payment=paid)
        assert (defaults.refundable_cents, defaults.unused_minutes, defaults.default_minutes) == (15000, 540, 540)

        refund = issue(paid, staff, amount_cents=15000, minutes=defaults.default_minutes)

        [at_stripe] = stripe_refunds(localstripe, paid)
        assert (at_stripe["amount"], at_stripe["metadata"]) == (15000, {"portal_refund_id": str(refund.pk)})
        refund.refresh_from_db()
        assert (refund.status, refund.stripe_refund_id) == ("succeeded", at_stripe["id"])
        assert (refund.minutes_requested, refund.minutes_reversed, refund.minutes_short) == (540, 540, 0)
        assert lot_minutes(paid) == 0
        paid.account.refresh_from_db()
        assert paid.account.balance_minutes == 0
        assert refund.credit_note.kind == "credit_note" and refund.credit_note.corrects == paid.receipt
        assert refund_defaults(payment=paid).refundable_cents == 0

    def test_a_partial_refund_takes_back_the_hours_staff_chose(self, localstripe, paid, staff):
        refund = issue(paid, staff, amount_cents=5000, minutes=90)  # pro-rata would be 200

        assert (refund.status, refund.amount_cents, refund.minutes_reversed) == ("succeeded", 5000, 90)
        assert lot_minutes(paid) == 510
        [reversal] = LedgerEntry.objects.filter(kind="reversal")
        assert (reversal.minutes, reversal.actor) == (-90, staff)
        assert [r["amount"] for r in stripe_refunds(localstripe, paid)] == [5000]
        assert Receipt.objects.filter(kind="credit_note", refund=refund).exists()

    def test_a_refund_of_money_only_takes_no_hours(self, localstripe, paid, staff):
        refund = issue(paid, staff, amount_cents=2500, minutes=0)

        assert (refund.status, refund.minutes_reversed, refund.minutes_short) == ("succeeded", 0, 0)
        assert lot_minutes(paid) == 600
        assert not LedgerEntry.objects.filter(kind="reversal").exists()
        assert [r["amount"] for r in stripe_refunds(localstripe, paid)] == [2500]

    def test_the_defaults_count_every_refund_not_failed_and_offer_the_amounts_share(self, localstripe, paid, staff):
        issue(paid, staff, amount_cents=3000, minutes=0)
        Refund.objects.create(payment=paid, amount_cents=1000, currency="EUR", status=Refund.Status.REQUESTED)
        Refund.objects.create(payment=paid, amount_cents=4000, currency="EUR", status="failed")

        defaults = refund_defaults(payment=paid, amount_cents=7500)

        assert defaults.refundable_cents == 15000 - 3000 - 1000
        assert (defaults.unused_minutes, defaults.default_minutes) == (600, 300)  # half the money, half of 10 h

    def test_an_audit_entry_says_who_refunded_what_and_why(self, localstripe, paid, staff):
        refund = issue(paid, staff, amount_cents=5000, minutes=120)

        [entry] = AuditEntry.objects.all()
        assert (entry.action, entry.actor, entry.actor_email, entry.reason) == (
            "refund.create",
            staff,
            staff.email,
            REASON,
        )
        assert (entry.target_type, entry.target_id, entry.payment, entry.account) == (
            "refund",
            str(refund.pk),
            paid,
            paid.account,
        )
        assert entry.ip_address == "203.0.113.5"
        assert entry.before == {"refundable_cents": 15000, "unused_minutes": 600}
        assert entry.after["amount_cents"] == 5000 and entry.after["minutes"] == 120


class TestRefusals:
    def test_an_amount_above_what_can_still_be_refunded_is_refused(self, localstripe, paid, staff):
        issue(paid, staff, amount_cents=7500, minutes=0)

        with pytest.raises(RefundRefused, match=r"^At most €75\.00 can still be refunded\.$"):
            issue(paid, staff, amount_cents=7501, minutes=0)

        assert Refund.objects.count() == 1 and AuditEntry.objects.count() == 1
        assert len(stripe_refunds(localstripe, paid)) == 1

    def test_a_refund_of_nothing_is_refused(self, localstripe, paid, staff):
        with pytest.raises(RefundRefused, match=r"at least €0\.01"):
            issue(paid, staff, amount_cents=0, minutes=0)

        assert_nothing_refunded(localstripe, paid)

    def test_more_hours_than_are_left_unused_are_refused(self, localstripe, paid, staff):
        use(paid.account, 90)

        with pytest.raises(RefundRefused, match=r"^At most 8 h 30 min of this payment's hours are left unused"):
            issue(paid, staff, amount_cents=15000, minutes=511)

        assert not Refund.objects.exists() and stripe_refunds(localstripe, paid) == []
        assert lot_minutes(paid) == 510

    def test_negative_hours_are_refused(self, localstripe, paid, staff):
        with pytest.raises(RefundRefused, match="cannot be negative"):
            issue(paid, staff, amount_cents=1000, minutes=-1)

        assert_nothing_refunded(localstripe, paid)

    def test_a_blank_reason_is_refused(self, localstripe, paid, staff):
        with pytest.raises(RefundRefused, match="^Give a reason for the refund"):
            issue(paid, staff, reason="   ")

        assert_nothing_refunded(localstripe, paid)

    def test_a_payment_that_did_not_succeed_is_refused(self, localstripe, staff):
        declined = make_paid_payment(localstripe, number="4000000000000341")
        assert declined.status == "failed"

        with pytest.raises(RefundRefused, match="^Only a payment Stripe charged can be refunded; this one is Failed."):
            refund_issue(payment=declined, amount_cents=100, minutes=0, reason=REASON, actor=staff)

        assert not Refund.objects.exists()

    def test_a_refund_stripe_refuses_is_failed_and_moves_no_hours(self, localstripe, paid, staff, settings):
        invalid = {"error": {"type": "invalid_request_error", "message": "Refund exceeds the charge."}}
        proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/refunds$": (400, invalid)})
        settings.STRIPE_API_BASE = proxy.url
        try:
            with pytest.raises(RefundRefused, match="^Stripe refused the refund; nothing was refunded"):
                issue(paid, staff, amount_cents=5000, minutes=100)
        finally:
            proxy.close()

        refund = Refund.objects.get()
        assert (refund.status, refund.stripe_refund_id, refund.minutes_reversed) == ("failed", None, 0)
        assert lot_minutes(paid) == 600
        assert refund_defaults(payment=paid).refundable_cents == 15000  # a failed refund frees its amount


class TestLostAnswers:
    def test_sending_again_completes_a_refund_whose_answer_was_lost_once(
        self, localstripe, paid, staff, answers_lost, settings
    ):
        with pytest.raises(ProviderUnavailable) as lost:
            issue(paid, staff, amount_cents=6000, minutes=240)

        refund = lost.value.refund
        refund.refresh_from_db()
        assert answers_lost.dropped == 1
        assert (refund.status, refund.stripe_refund_id) == ("requested", None)
        assert lot_minutes(paid) == 600  # not applied yet
        [made] = stripe_refunds(localstripe, paid)  # but Stripe did make it

        settings.STRIPE_API_BASE = localstripe.url  # Stripe answers again
        sent = refund_send(refund=refund)
        again = refund_send(refund=refund)

        # localstripe ignores Idempotency-Key: a plain resend would make a second refund there
        # (two refunds, €120.00 back). Finding the first one by its metadata keeps it at one.
        assert [r["id"] for r in stripe_refunds(localstripe, paid)] == [made["id"]]
        assert sent == again and Refund.objects.count() == 1
        assert (sent.status, sent.stripe_refund_id, sent.minutes_reversed) == ("succeeded", made["id"], 240)
        assert lot_minutes(paid) == 360
        assert LedgerEntry.objects.filter(kind="reversal").count() == 1
        assert Receipt.objects.filter(kind="credit_note").count() == 1

    def test_sending_again_makes_a_refund_stripe_never_received(self, localstripe, paid, staff, settings):
        settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: the request never leaves
        with pytest.raises(ProviderUnavailable) as unreachable:
            issue(paid, staff, amount_cents=3000, minutes=60)
        assert Refund.objects.get().status == "requested" and stripe_refunds(localstripe, paid) == []

        settings.STRIPE_API_BASE = localstripe.url
        refund = refund_send(refund=unreachable.value.refund)

        [made] = stripe_refunds(localstripe, paid)
        assert (refund.status, refund.stripe_refund_id, refund.minutes_reversed) == ("succeeded", made["id"], 60)
        assert made["metadata"] == {"portal_refund_id": str(refund.pk)}
        assert lot_minutes(paid) == 540

    def test_a_second_refund_is_refused_while_one_awaits_stripes_answer(self, localstripe, paid, staff, answers_lost):
        with pytest.raises(ProviderUnavailable):
            issue(paid, staff, amount_cents=1000, minutes=0)

        with pytest.raises(RefundRefused, match=r"^Another refund of this payment \(€10\.00\) is still waiting"):
            issue(paid, staff, amount_cents=1000, minutes=0)

        assert Refund.objects.count() == 1 and len(stripe_refunds(localstripe, paid)) == 1

    @pytest.mark.parametrize("event_type", ["refund.updated", "charge.refunded"])
    def test_the_webhook_completes_a_console_refund_that_arrives_before_our_answer(
        self, localstripe, paid, staff, answers_lost, send, event_type, settings
    ):
        with pytest.raises(ProviderUnavailable) as lost:
            issue(paid, staff, amount_cents=7500, minutes=100)
        [made] = stripe_refunds(localstripe, paid)
        assert made["metadata"] == {"portal_refund_id": str(lost.value.refund.pk)}
        told = made if event_type == "refund.updated" else samples.charge_refunded(paid, [made])

        [event] = send(samples.event(event_type, told))
        settings.STRIPE_API_BASE = localstripe.url
        refund_send(refund=lost.value.refund)  # staff press "send again" after the webhook
        send(samples.event(event_type, told))  # and Stripe tells us once more

        assert event.status == "processed"
        refund = Refund.objects.get()  # no second row for the same refund
        assert (refund.pk, refund.stripe_refund_id, refund.status) == (lost.value.refund.pk, made["id"], "succeeded")
        assert (refund.minutes_requested, refund.minutes_reversed) == (100, 100)  # as chosen, not pro-rata (300)
        assert lot_minutes(paid) == 500
        assert LedgerEntry.objects.filter(kind="reversal").count() == 1
        assert len(stripe_refunds(localstripe, paid)) == 1

    def test_the_webhook_after_our_answer_changes_nothing(self, localstripe, paid, staff, send):
        refund = issue(paid, staff, amount_cents=15000, minutes=600)
        [made] = stripe_refunds(localstripe, paid)

        send(
            samples.event("refund.updated", made),
            samples.event("charge.refunded", samples.charge_refunded(paid, [made])),
        )

        assert list(Refund.objects.values_list("pk", "minutes_reversed")) == [(refund.pk, 600)]
        assert LedgerEntry.objects.filter(kind="reversal").count() == 1
        assert lot_minutes(paid) == 0


@pytest.mark.django_db(transaction=True)
class TestRacingRefunds:
    def test_two_refunds_that_together_exceed_the_payment_never_both_go_through(self, localstripe):
        paid, staff = make_paid_payment(localstripe), make_staff()

        outcomes, errors = run_at_once(lambda: issue(paid, staff, amount_cents=10000, minutes=400), 2)

        assert len(outcomes) == 1 and [type(error) for error in errors] == [RefundRefused]
        # Either told to wait for the first, or told what is left once the first is done.
        assert "still waiting for Stripe's answer" in str(errors[0]) or "At most €50.00" in str(errors[0])
        assert [r["amount"] for r in stripe_refunds(localstripe, paid)] == [10000]
        assert list(Refund.objects.values_list("status", "minutes_reversed")) == [("succeeded", 400)]
        assert lot_minutes(paid) == 200

    def test_two_refunds_that_both_fit_never_take_more_than_the_lot_has(self, localstripe):
        paid, staff = make_paid_payment(localstripe), make_staff()

        outcomes, errors = run_at_once(lambda: issue(paid, staff, amount_cents=5000, minutes=300), 2)

        # Both fit, one after the other; or the second came while the first was still in flight.
        assert len(outcomes) + len(errors) == 2 and len(outcomes) >= 1
        assert all(isinstance(e, RefundRefused) and "still waiting" in str(e) for e in errors)
        made = stripe_refunds(localstripe, paid)
        assert len(made) == len(outcomes) == Refund.objects.filter(status="succeeded").count()
        assert lot_minutes(paid) == 600 - 300 * len(outcomes)
        assert sum(r["amount"] for r in made) == 5000 * len(outcomes)
