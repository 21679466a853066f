"""Payments left for staff review: Finance refunds what Stripe really charged, or records how it
was resolved; no hours move, and no document talks of hours that were never added."""

from urllib.parse import parse_qs

import pytest

from billing import receipts, refunds
from billing.errors import ReasonRequired
from billing.models import AuditEntry, Lot, Payment
from billing.payment_reviews import PaymentReviewRefused, payment_review_resolve
from billing.payments import payment_start, payment_token_issue
from billing.tests.builders import add_card, make_paid_payment, make_plan, make_student
from billing.tests.network import LossyProxy
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def charged_less(localstripe, settings):
    """A payment of EUR 150.00 for which Stripe charged EUR 15.00: left for staff, no hours."""
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
    with pytest.raises(refunds.RefundRefused, match=r"At most EUR 15.00 can still be refunded."):
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
            reason="Refunded EUR 15.00; the student paid again",
            ip_address="10.0.0.9",
        )

        assert resolved.status == Payment.Status.RESOLVED
        assert resolved.failure_message.startswith("Stripe charged EUR 15.00 instead of EUR 150.00.")  # kept
        entry = AuditEntry.objects.get(action="payment.resolve")
        assert (entry.actor, entry.reason, entry.ip_address) == (
            staff_user,
            "Refunded EUR 15.00; the student paid again",
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
