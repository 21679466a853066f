"""Payments left for staff review: Finance refunds what Stripe really charged, or records how it
was resolved; no hours move, and no document talks of hours that were never added."""

import re
from urllib.parse import parse_qs

import pytest

from billing import receipts, refunds, samples
from billing.errors import ProviderUnavailable, ReasonRequired
from billing.models import AuditEntry, Dispute, LedgerEntry, Lot, Payment, Refund
from billing.payment_reviews import PaymentReviewRefused, payment_review_resolve
from billing.payments import payment_start, payment_token_issue
from billing.tests.builders import add_card, make_paid_payment, make_plan, make_student
from billing.tests.network import LossyProxy
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def charged_less(localstripe, settings):
    """A payment of €150.00 for which Stripe charged €15.00: left for staff, no hours."""
    account = make_student()
    add_card(account, localstripe)
    plan = make_plan("Standard", minutes=600, price_cents=15000)

    def charge_less(request_body):
        sent = {key: values[-1] for key, values in parse_qs(request_body.decode()).items()}
        return 200, localstripe.post("/v1/payment_intents", **(sent | {"amount": "1500"}))

    proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": charge_less})
    settings.STRIPE_API_BASE = proxy.url
    try:
        payment = payment_start(account=account, token=payment_token_issue(account=account, plan=plan, kind="purchase"))
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url
    assert payment.status == Payment.Status.NEEDS_REVIEW
    return payment


def test_finance_refunds_what_stripe_charged_and_takes_no_hours_back(localstripe, charged_less, staff_user):
    defaults = refunds.refund_defaults(payment=charged_less)
    assert (defaults.refundable_cents, defaults.unused_minutes, defaults.default_minutes) == (1500, 0, 0)

    refund = refunds.refund_issue(
        payment=charged_less, amount_cents=1500, minutes=0, reason="Stripe charged the wrong amount", actor=staff_user
    )

    assert (refund.status, refund.amount_cents, refund.currency) == ("succeeded", 1500, "EUR")
    assert (refund.minutes_reversed, refund.minutes_short) == (0, 0)
    [at_stripe] = localstripe.get("/v1/refunds")["data"]
    assert at_stripe["amount"] == 1500
    assert refunds.refund_defaults(payment=charged_less).refundable_cents == 0
    assert not Lot.objects.exists()


def test_more_than_stripe_charged_cannot_be_refunded(localstripe, charged_less, staff_user):
    with pytest.raises(refunds.RefundRefused, match=r"At most €15.00 can still be refunded."):
        refunds.refund_issue(payment=charged_less, amount_cents=15000, minutes=0, reason="Refund", actor=staff_user)


def test_its_credit_note_says_no_hours_were_added_never_that_they_were_used(localstripe, charged_less):
    # A refund made in Stripe's Dashboard: no hours chosen by staff, so the pro-rata share applies.
    refund = refunds.refund_record(
        payment=charged_less, stripe_refund_id="re_dashboard", amount_cents=1500, currency="eur", status="succeeded"
    )

    assert (refund.minutes_reversed, refund.minutes_short) == (0, 0)
    text = pdf_text(receipts.receipt_pdf(receipt=refund.credit_note))
    assert "No hours were added for this payment, so none were taken back." in text
    assert "already been used" not in text


def test_a_refund_of_a_paid_payment_still_takes_its_hours_back(localstripe, staff_user):
    payment = make_paid_payment(localstripe)

    refund = refunds.refund_issue(payment=payment, amount_cents=15000, minutes=600, reason="Refund", actor=staff_user)

    assert refund.minutes_reversed == 600
    assert "No hours were added" not in pdf_text(receipts.receipt_pdf(receipt=refund.credit_note))


class TestResolving:
    def test_finance_records_how_a_review_ended_with_a_reason_in_the_audit_log(
        self, localstripe, charged_less, staff_user
    ):
        resolved = payment_review_resolve(
            payment=charged_less,
            actor=staff_user,
            reason="Refunded €15.00; the student paid again",
            ip_address="10.0.0.9",
        )

        assert resolved.status == Payment.Status.RESOLVED
        assert resolved.failure_message.startswith("Stripe charged €15.00 instead of €150.00.")  # kept
        entry = AuditEntry.objects.get(action="payment.resolve")
        assert (entry.actor, entry.reason, entry.ip_address) == (
            staff_user,
            "Refunded €15.00; the student paid again",
            "10.0.0.9",
        )
        assert entry.before["status"] == "needs_review" and entry.after["status"] == "resolved"

    def test_a_reason_is_required(self, localstripe, charged_less, staff_user):
        with pytest.raises(ReasonRequired):
            payment_review_resolve(payment=charged_less, actor=staff_user, reason="  ")

        charged_less.refresh_from_db()
        assert charged_less.status == Payment.Status.NEEDS_REVIEW

    def test_only_a_payment_waiting_for_review_can_be_resolved(self, localstripe, staff_user):
        payment = make_paid_payment(localstripe)

        with pytest.raises(PaymentReviewRefused, match="not waiting for review"):
            payment_review_resolve(payment=payment, actor=staff_user, reason="Looks fine")

        assert not AuditEntry.objects.filter(action="payment.resolve").exists()

    def test_a_resolved_payment_can_still_be_refunded_for_what_stripe_charged(
        self, localstripe, charged_less, staff_user
    ):
        payment_review_resolve(payment=charged_less, actor=staff_user, reason="Student asked to keep it open")

        refund = refunds.refund_issue(
            payment=charged_less, amount_cents=1500, minutes=0, reason="Refund", actor=staff_user
        )

        assert refund.status == "succeeded"


class TestStripeEventsAboutIt:
    """What Stripe did with the money it really took is recorded, as for any charged payment."""

    def test_a_dashboard_refund_of_it_is_recorded_and_takes_no_hours(self, localstripe, charged_less, send):
        dashboard = samples.refund(charged_less, amount_cents=1500)

        [event] = send(samples.event("charge.refunded", samples.charge_refunded(charged_less, [dashboard])))

        assert event.status == "processed"
        refund = Refund.objects.get(stripe_refund_id=dashboard["id"])
        assert (refund.status, refund.amount_cents, refund.minutes_reversed, refund.minutes_short) == (
            "succeeded",
            1500,
            0,
            0,
        )
        assert refunds.refund_defaults(payment=charged_less).refundable_cents == 0

    def test_a_console_refund_of_it_that_fails_later_is_failed_and_refundable_again(
        self, localstripe, charged_less, staff_user, send
    ):
        refund = refunds.refund_issue(
            payment=charged_less, amount_cents=1500, minutes=0, reason="Wrong amount", actor=staff_user
        )
        failed = samples.refund(charged_less, amount_cents=1500, status="failed", refund_id=refund.stripe_refund_id)

        [event] = send(samples.event("refund.updated", failed))

        assert event.status == "processed"
        refund.refresh_from_db()
        assert refund.status == "failed"
        assert refunds.refund_defaults(payment=charged_less).refundable_cents == 1500

    def test_a_chargeback_on_it_is_recorded_and_holds_no_hours(self, localstripe, charged_less, send):
        chargeback = samples.dispute(charged_less, amount_cents=1500, withdrawn=True)

        [event] = send(samples.event("charge.dispute.created", chargeback))

        assert event.status == "processed"
        dispute = Dispute.objects.get(stripe_dispute_id=chargeback["id"])
        assert (dispute.payment, dispute.amount_cents, dispute.funds_withdrawn) == (charged_less, 1500, True)
        assert (dispute.minutes_held, dispute.minutes_short) == (0, 0)
        assert not LedgerEntry.objects.exists()


def test_a_refund_left_unsent_is_not_sent_past_what_stripe_charged(localstripe, charged_less, staff_user, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # the request never reaches Stripe
    with pytest.raises(ProviderUnavailable) as lost:
        refunds.refund_issue(payment=charged_less, amount_cents=1000, minutes=0, reason="Refund", actor=staff_user)
    settings.STRIPE_API_BASE = localstripe.url
    # Meanwhile a refund in the Dashboard, whose event has not reached us yet.
    localstripe.post("/v1/refunds", payment_intent=charged_less.stripe_payment_intent_id, amount=1000)

    with pytest.raises(refunds.RefundRefused, match=f"^{re.escape(refunds.NOT_SENT_OVER_PAID)}$"):
        refunds.refund_send(refund=lost.value.refund, actor=staff_user)

    assert [made["amount"] for made in localstripe.get("/v1/refunds")["data"]] == [1000]
