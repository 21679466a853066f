"""Finance's one retry of a payment that failed without reaching the bank, against a real localstripe:
the same charge once more, settled like any other payment; declines and everything else refused."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from billing import payments
from billing.errors import ReasonRequired
from billing.fraud.blocks import account_block
from billing.models import AuditEntry, Lot, Payment, Receipt
from billing.payments import FailedPaymentRefused, payment_retry
from billing.tests.builders import (
    add_card,
    make_console_user,
    make_plan,
    make_student,
    make_subscription_plan,
    subscribe,
)
from billing.tests.concurrency import run_at_once
from billing.tests.network import LossyProxy

pytestmark = pytest.mark.django_db

RATE_LIMITED = (429, {"error": {"type": "rate_limit_error", "message": "Too many requests."}})
PROCESSING_ERROR = (
    402,
    {"error": {"type": "card_error", "code": "processing_error", "message": "An error occurred while processing."}},
)
DECLINED = (
    402,
    {"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline", "message": "No."}},
)


@pytest.fixture
def account():
    return make_student()


@pytest.fixture
def finance():
    return make_console_user("fiona.finance@example.com", role="Finance")


def buy_with_stripe_answering(localstripe, settings, account, plan, answer, *, kind="purchase", renewed_lot=None):
    """A purchase whose charge request Stripe answers with `answer` (status, body) instead of charging."""
    proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": answer})
    settings.STRIPE_API_BASE = proxy.url
    try:
        token = payments.payment_token_issue(account=account, plan=plan, kind=kind, renewed_lot=renewed_lot)
        return payments.payment_start(account=account, token=token)
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url


def retry(payment, finance, reason="Stripe had an outage; the student asked us to charge again."):
    return payment_retry(payment=payment, actor=finance, reason=reason, ip_address="203.0.113.9")


def test_a_payment_stripe_did_not_take_is_charged_again_once_and_credited(
    localstripe, settings, account, plan, finance
):
    card = add_card(account, localstripe)
    failed = buy_with_stripe_answering(localstripe, settings, account, plan, RATE_LIMITED)
    assert (failed.status, failed.failure_code) == (Payment.Status.FAILED, Payment.Failure.PROVIDER_UNAVAILABLE)
    assert localstripe.payment_intents() == []

    retried = retry(failed, finance)

    assert retried.status == Payment.Status.SUCCEEDED
    assert retried.retry_of == failed and retried.pk != failed.pk
    assert (retried.plan, retried.kind, retried.amount_cents, retried.currency) == (plan, "purchase", 15000, "EUR")
    assert retried.payment_method == card
    # Stripe's idempotency key comes from the failed payment: a retry sent twice is one charge.
    assert retried.idempotency_key == f"retry-{failed.pk}"
    [intent] = localstripe.payment_intents()
    assert (intent["id"], intent["amount"], intent["status"]) == (retried.stripe_payment_intent_id, 15000, "succeeded")
    assert intent["metadata"]["payment_id"] == str(retried.pk)
    account.refresh_from_db()
    assert account.balance_minutes == 600 and retried.lot.minutes_remaining == 600
    assert Receipt.objects.filter(payment=retried).exists()
    failed.refresh_from_db()
    assert failed.status == Payment.Status.FAILED  # the record of what happened first stays


def test_the_retry_is_audited_on_the_failed_payment_with_reason_and_before_after(
    localstripe, settings, account, plan, finance
):
    add_card(account, localstripe)
    failed = buy_with_stripe_answering(localstripe, settings, account, plan, RATE_LIMITED)

    retried = retry(failed, finance, reason="  Outage on 2 Dec.  ")

    entry = AuditEntry.objects.get(action="payment.retry")
    assert (entry.actor, entry.reason, entry.ip_address) == (finance, "Outage on 2 Dec.", "203.0.113.9")
    assert (entry.payment_id, entry.account_id) == (failed.pk, account.pk)
    assert entry.before == {"status": "failed", "failure_code": "provider_unavailable"}
    assert entry.after == {"retry_payment_id": retried.pk, "amount_cents": 15000, "currency": "EUR"}


def test_a_processing_error_of_the_card_network_is_retried(localstripe, settings, account, plan, finance):
    add_card(account, localstripe)
    failed = buy_with_stripe_answering(localstripe, settings, account, plan, PROCESSING_ERROR)
    assert failed.failure_code == "processing_error"

    assert retry(failed, finance).status == Payment.Status.SUCCEEDED


def test_a_renewal_is_retried_as_the_renewal_of_the_same_lot(localstripe, settings, account, plan, finance):
    add_card(account, localstripe)
    renewed = payments.payment_start(
        account=account, token=payments.payment_token_issue(account=account, plan=plan, kind="purchase")
    ).lot
    failed = buy_with_stripe_answering(
        localstripe, settings, account, plan, RATE_LIMITED, kind="renewal", renewed_lot=renewed
    )

    retried = retry(failed, finance)

    assert (retried.status, retried.kind, retried.renewed_lot) == (Payment.Status.SUCCEEDED, "renewal", renewed)
    assert Lot.objects.filter(account=account).count() == 2


def test_a_retry_that_fails_again_says_why_and_is_not_retried_a_second_time(
    localstripe, settings, account, plan, finance
):
    add_card(account, localstripe)
    failed = buy_with_stripe_answering(localstripe, settings, account, plan, RATE_LIMITED)
    proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": DECLINED})
    settings.STRIPE_API_BASE = proxy.url
    try:
        retried = retry(failed, finance)
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url

    assert (retried.status, retried.failure_code) == (Payment.Status.FAILED, "generic_decline")
    assert retried.failure_message == "Your card was declined by your bank."
    with pytest.raises(FailedPaymentRefused, match="already retried once"):
        retry(failed, finance)
    with pytest.raises(FailedPaymentRefused, match=f"already the retry of payment {failed.pk}"):
        retry(retried, finance)
    assert Payment.objects.count() == 2


def test_a_retry_the_bank_wants_confirmed_waits_for_the_student(localstripe, settings, account, plan, finance):
    add_card(account, localstripe, "4000002760003184")
    failed = buy_with_stripe_answering(localstripe, settings, account, plan, RATE_LIMITED)

    retried = retry(failed, finance)

    assert retried.status == Payment.Status.REQUIRES_ACTION
    secret = payments.payment_client_secret(payment=retried)
    localstripe.browser_authenticate(secret, success=True)
    assert payments.payment_refresh(payment=retried).status == Payment.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_two_retries_at_once_make_one_payment_and_one_charge(localstripe, settings):
    account = make_student()
    plan = make_plan()
    finance = make_console_user("fiona.finance@example.com", role="Finance")
    add_card(account, localstripe)
    failed = buy_with_stripe_answering(localstripe, settings, account, plan, RATE_LIMITED)

    results, errors = run_at_once(lambda: retry(Payment.objects.get(pk=failed.pk), finance), 2)

    assert len(results) == 1 and results[0].status == Payment.Status.SUCCEEDED
    assert len(errors) == 1 and isinstance(errors[0], FailedPaymentRefused)
    assert Payment.objects.filter(retry_of=failed).count() == 1
    assert len(localstripe.payment_intents()) == 1
    assert AuditEntry.objects.filter(action="payment.retry").count() == 1


class TestRefusals:
    """What may not be retried is refused with a reason staff can act on; nothing is charged."""

    @pytest.fixture
    def failed(self, localstripe, settings, account, plan):
        add_card(account, localstripe)
        return buy_with_stripe_answering(localstripe, settings, account, plan, RATE_LIMITED)

    def assert_refused(self, localstripe, payment, finance, message, reason="Please charge again."):
        payments_before, intents_before = Payment.objects.count(), len(localstripe.payment_intents())
        with pytest.raises((FailedPaymentRefused, ReasonRequired), match=message):
            retry(payment, finance, reason=reason)
        assert Payment.objects.count() == payments_before
        assert len(localstripe.payment_intents()) == intents_before
        assert not AuditEntry.objects.filter(action="payment.retry").exists()

    def test_a_card_decline(self, localstripe, settings, account, plan, finance):
        add_card(account, localstripe, "4000000000000341")
        declined = payments.payment_start(
            account=account, token=payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        )
        assert declined.failure_code == "card_declined"
        self.assert_refused(localstripe, declined, finance, "“card_declined”, which is not a processing error")

    def test_a_payment_that_did_not_fail(self, localstripe, failed, finance):
        Payment.objects.filter(pk=failed.pk).update(status=Payment.Status.PROCESSING)
        failed.refresh_from_db()
        self.assert_refused(localstripe, failed, finance, "This payment is processing, not failed")

    def test_a_blocked_account(self, localstripe, failed, account, finance):
        account_block(account=account, actor=finance, reason="Confirmed fraud.")
        self.assert_refused(localstripe, failed, finance, "account is blocked")

    def test_a_removed_card(self, localstripe, failed, finance):
        failed.payment_method.removed_at = timezone.now()
        failed.payment_method.save()
        self.assert_refused(localstripe, failed, finance, "card of this payment has been removed")

    def test_a_plan_no_longer_on_sale(self, localstripe, failed, plan, finance):
        plan.is_active = False
        plan.save()
        self.assert_refused(localstripe, failed, finance, "Standard is no longer on sale")

    def test_a_student_who_has_paid_since(self, localstripe, failed, account, plan, finance):
        payments.payment_start(
            account=account, token=payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        )
        self.assert_refused(localstripe, failed, finance, "has paid for a package since")

    def test_a_payment_older_than_a_week(self, localstripe, failed, finance):
        with time_machine.travel(timezone.now() + payments.RETRY_WITHIN + timedelta(minutes=1)):
            self.assert_refused(localstripe, failed, finance, "more than 7 days ago")

    def test_a_subscription_invoice(self, localstripe, account, finance):
        subscription = subscribe(account, make_subscription_plan(), localstripe)
        invoice_payment = subscription.payments.get()
        Payment.objects.filter(pk=invoice_payment.pk).update(
            status=Payment.Status.FAILED, failure_code=Payment.Failure.PROVIDER_UNAVAILABLE
        )
        invoice_payment.refresh_from_db()
        self.assert_refused(localstripe, invoice_payment, finance, "subscription invoice")

    def test_another_payment_in_flight(self, localstripe, failed, account, plan, finance):
        Payment.objects.create(
            account=account,
            plan=plan,
            kind="purchase",
            amount_cents=plan.price_cents,
            currency=plan.currency,
            minutes=plan.minutes,
            validity_days=plan.validity_days,
            payment_method=failed.payment_method,
            idempotency_key="in-flight",
        )
        self.assert_refused(localstripe, failed, finance, "Another payment of this student is in progress")

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_no_reason(self, localstripe, failed, finance, reason):
        self.assert_refused(localstripe, failed, finance, "Say why this payment is retried", reason=reason)
