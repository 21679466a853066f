"""Buying hours with a saved card against a real localstripe: one charge, hours credited once."""

import dataclasses
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.utils import timezone

from billing import payments, refunds, samples
from billing.errors import AccountBlocked, PaymentInProgress, PaymentRefused
from billing.fraud.blocks import account_block
from billing.models import LedgerEntry, Lot, Payment, PaymentMethod, Plan
from billing.payments import payments_reconcile
from billing.stripe_gateway import PaymentIntent
from billing.tests.builders import add_card, credit, make_plan, make_student
from billing.tests.localstripe import free_port
from billing.tests.network import LossyProxy, charge_answers_lost

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan():
    return make_plan("Standard", minutes=600, price_cents=15000, validity_days=90)


@pytest.fixture
def account():
    return make_student()


def buy(account, plan, **token_fields):
    token = payments.payment_token_issue(account=account, plan=plan, kind=token_fields.pop("kind", "purchase"))
    return payments.payment_start(account=account, token=token, **token_fields)


def test_a_purchase_charges_the_default_card_and_credits_one_lot(localstripe, account, plan):
    card = add_card(account, localstripe)

    payment = buy(account, plan)

    assert payment.status == Payment.Status.SUCCEEDED
    assert (payment.amount_cents, payment.currency, payment.payment_method) == (15000, "EUR", card)
    lot = payment.lot
    assert (lot.minutes_purchased, lot.minutes_remaining, lot.price_cents, lot.plan) == (600, 600, 15000, plan)
    assert timezone.localtime(lot.expires_at).date() == (timezone.localdate() + timedelta(days=90))
    [intent] = localstripe.payment_intents()
    assert intent["id"] == payment.stripe_payment_intent_id
    assert (intent["amount"], intent["currency"], intent["status"]) == (15000, "eur", "succeeded")
    assert intent["metadata"]["payment_id"] == str(payment.pk)
    account.refresh_from_db()
    assert account.balance_minutes == 600


def test_the_same_token_twice_charges_once(localstripe, account, plan):
    add_card(account, localstripe)
    token = payments.payment_token_issue(account=account, plan=plan, kind="renewal")

    first = payments.payment_start(account=account, token=token)
    second = payments.payment_start(account=account, token=token)

    assert first.pk == second.pk
    assert len(localstripe.payment_intents()) == 1
    assert Lot.objects.count() == 1


def test_a_card_declined_on_charge_adds_no_hours(localstripe, account, plan):
    add_card(account, localstripe, "4000000000000341")

    payment = buy(account, plan)

    assert payment.status == Payment.Status.FAILED
    assert payment.failure_code == "card_declined"
    assert payment.failure_message == "Your card was declined by your bank."
    assert payment.lot is None
    assert not LedgerEntry.objects.exists()


def test_a_3d_secure_card_waits_for_the_student_then_credits(localstripe, account, plan):
    add_card(account, localstripe, "4000002760003184")

    payment = buy(account, plan)
    assert payment.status == Payment.Status.REQUIRES_ACTION
    assert not Lot.objects.exists()

    intent = payments.stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)
    localstripe.browser_authenticate(intent.client_secret, success=True)
    payment = payments.payment_refresh(payment=payment)

    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.lot.minutes_purchased == 600


def test_a_failed_3d_secure_adds_no_hours_and_says_why(localstripe, account, plan):
    add_card(account, localstripe, "4000002500003155")
    payment = buy(account, plan)
    intent = payments.stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)

    localstripe.browser_authenticate(intent.client_secret, success=False)
    payment = payments.payment_refresh(payment=payment)

    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message == "The card's authentication (3-D Secure) failed."
    assert not Lot.objects.exists()


def test_a_new_click_cancels_a_payment_left_waiting_for_3d_secure(localstripe, account, plan):
    add_card(account, localstripe, "4000002760003184")
    waiting = buy(account, plan)
    assert waiting.status == Payment.Status.REQUIRES_ACTION

    second = buy(account, plan)

    waiting.refresh_from_db()
    assert waiting.status == Payment.Status.FAILED
    assert localstripe.get(f"/v1/payment_intents/{waiting.stripe_payment_intent_id}")["status"] == "canceled"
    assert second.status == Payment.Status.REQUIRES_ACTION  # only the new one can still be completed


def test_a_repeated_token_is_marked_as_a_replay(localstripe, account, plan):
    add_card(account, localstripe)
    token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")

    assert payments.payment_start(account=account, token=token).replayed is False
    assert payments.payment_start(account=account, token=token).replayed is True


def test_settling_the_same_intent_again_credits_nothing_more(localstripe, account, plan):
    add_card(account, localstripe)
    payment = buy(account, plan)
    intent = payments.stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)

    again = payments.payment_intent_settle(intent=intent)  # e.g. the payment_intent.succeeded webhook

    assert again.lot == payment.lot
    assert Lot.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_a_late_processing_or_failure_never_moves_a_succeeded_payment_back(localstripe, account, plan):
    add_card(account, localstripe)
    payment = buy(account, plan)
    for status in ("processing", "requires_action", "requires_payment_method", "canceled"):
        stale = PaymentIntent(
            id=payment.stripe_payment_intent_id,
            status=status,
            amount_cents=15000,
            currency="EUR",
            client_secret="",
            payment_method_id=None,
        )
        assert payments.payment_intent_settle(intent=stale).status == Payment.Status.SUCCEEDED
    assert Lot.objects.count() == 1


def test_an_intent_found_by_its_metadata_settles_the_payment_it_names(localstripe, settings, account, plan):
    add_card(account, localstripe)
    with charge_answers_lost(localstripe, settings):
        payment = buy(account, plan)
    assert payment.status == Payment.Status.PROCESSING and payment.stripe_payment_intent_id is None
    [charged] = localstripe.payment_intents()

    # The webhook knows the intent only by the payment and account ids we put in its metadata.
    intent = payments.stripe_gateway.payment_intent_retrieve(charged["id"])
    impostor = dataclasses.replace(intent, id="pi_elsewhere", metadata={**intent.metadata, "account_id": "999"})
    with pytest.raises(payments.UnknownPaymentIntent):
        payments.payment_intent_settle(intent=impostor)
    settled = payments.payment_intent_settle(intent=intent)

    assert settled.status == Payment.Status.SUCCEEDED
    assert settled.stripe_payment_intent_id == charged["id"]
    assert Lot.objects.count() == 1


def test_an_answer_lost_after_stripe_charged_is_recovered_by_a_refresh(localstripe, settings, account, plan):
    add_card(account, localstripe)
    with charge_answers_lost(localstripe, settings) as proxy:
        payment = buy(account, plan)
    assert proxy.dropped == 1

    assert payment.status == Payment.Status.PROCESSING  # charged or not: we do not know yet
    assert not Lot.objects.exists()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.conf.settings.STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")
        with pytest.raises(PaymentInProgress):
            buy(account, plan)  # no second charge while the first is still unresolved

    payment = payments.payment_refresh(payment=payment)

    assert payment.status == Payment.Status.SUCCEEDED
    assert len(localstripe.payment_intents()) == 1
    assert Lot.objects.count() == 1


def test_stripe_unreachable_leaves_the_payment_to_be_checked_then_declared_not_charged(
    localstripe, settings, account, plan
):
    add_card(account, localstripe)
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    payment = buy(account, plan)
    assert payment.status == Payment.Status.PROCESSING
    assert payments.payment_refresh(payment=payment).status == Payment.Status.PROCESSING

    settings.STRIPE_API_BASE = localstripe.url
    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        payment = payments.payment_refresh(payment=payment)

    assert payment.status == Payment.Status.FAILED
    assert "You were not charged" in payment.failure_message
    assert localstripe.payment_intents() == []
    assert not Lot.objects.exists()


def test_a_card_stripe_no_longer_knows_is_reported_and_put_aside(localstripe, account, plan):
    card = add_card(account, localstripe)
    PaymentMethod.objects.filter(pk=card.pk).update(stripe_payment_method_id="pm_unknownToStripe")

    payment = buy(account, plan)

    assert payment.status == Payment.Status.FAILED
    assert payment.failure_message.startswith("This card is no longer available")
    card.refresh_from_db()
    assert card.removed_at is not None


class TestRefusals:
    """Bad input is refused with a clear message, before anything is charged or written."""

    def assert_refused(self, localstripe, account, message, **start):
        with pytest.raises(PaymentRefused, match=message):
            payments.payment_start(account=account, **start)
        assert not Payment.objects.exists()
        assert localstripe.payment_intents() == []

    def test_a_missing_or_tampered_token(self, localstripe, account, plan):
        add_card(account, localstripe)
        token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        self.assert_refused(localstripe, account, "not valid", token="")
        self.assert_refused(localstripe, account, "not valid", token=token[:-3] + "abc")

    def test_another_students_token(self, localstripe, account, plan):
        add_card(account, localstripe)
        other = make_student()
        token = payments.payment_token_issue(account=other, plan=plan, kind="purchase")
        self.assert_refused(localstripe, account, "not valid", token=token)

    def test_an_expired_token(self, localstripe, account, plan):
        add_card(account, localstripe)
        with time_machine.travel(timezone.now() - timedelta(hours=13)):
            token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        self.assert_refused(localstripe, account, "expired", token=token)

    def test_an_inactive_plan(self, localstripe, account, plan):
        add_card(account, localstripe)
        token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        plan.is_active = False
        plan.save()
        self.assert_refused(localstripe, account, "no longer on sale", token=token)

    @pytest.mark.parametrize(
        "change", [{"price_cents": 16000}, {"minutes": 300}, {"currency": "USD"}, {"validity_days": 30}]
    )
    def test_a_plan_changed_since_the_button_was_shown(self, localstripe, account, plan, change):
        add_card(account, localstripe)
        token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        Plan.objects.filter(pk=plan.pk).update(**change)
        self.assert_refused(localstripe, account, "Standard has changed", token=token)

    def test_someone_elses_card(self, localstripe, account, plan):
        add_card(account, localstripe)
        foreign = add_card(make_student(), localstripe)
        token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        self.assert_refused(
            localstripe, account, "not one of your saved cards", token=token, payment_method_id=foreign.pk
        )

    def test_no_card_at_all(self, localstripe, account, plan):
        token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        self.assert_refused(localstripe, account, "add a card first", token=token)

    def test_renewing_someone_elses_lot(self, localstripe, account, plan):
        add_card(account, localstripe)
        foreign_lot = credit(make_student(), 600)
        token = payments.payment_token_issue(account=account, plan=plan, kind="renewal", renewed_lot=foreign_lot)
        self.assert_refused(localstripe, account, "not valid", token=token)


def unreachable_stripe(settings):
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_a_click_while_a_payment_awaits_3d_secure_that_cannot_be_cancelled_leads_back_to_it(
    localstripe, settings, account, plan
):
    add_card(account, localstripe, "4000002760003184")
    waiting = buy(account, plan)
    unreachable_stripe(settings)  # so the new click cannot cancel the waiting one

    again = buy(account, plan)

    assert (again.pk, again.status) == (waiting.pk, Payment.Status.REQUIRES_ACTION)
    assert Payment.objects.count() == 1
    assert len(localstripe.payment_intents()) == 1


def test_stripe_charging_another_amount_leaves_the_payment_for_staff_without_hours(
    localstripe, settings, account, plan
):
    add_card(account, localstripe)

    def charged_less(request_body):
        charged = localstripe.post("/v1/payment_intents", **{**parse_qs_last(request_body), "amount": "1500"})
        return 200, charged

    proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": charged_less})
    settings.STRIPE_API_BASE = proxy.url
    try:
        payment = buy(account, plan)
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url

    assert payment.status == Payment.Status.NEEDS_REVIEW
    assert payment.failure_code == "amount_mismatch"
    assert (payment.charged_cents, payment.charged_currency) == (1500, "EUR")  # what a refund gives back
    assert payment.failure_message == "Stripe charged €15.00 instead of €150.00. No hours were added."
    assert payment.stripe_payment_intent_id  # staff find it at Stripe
    assert not Lot.objects.exists()
    assert payments.payment_refresh(payment=payment).status == Payment.Status.NEEDS_REVIEW  # left to staff


def parse_qs_last(request_body):
    """A form-encoded Stripe request as {key: last value}, to send on to the stand-in."""
    return {key: values[-1] for key, values in parse_qs(request_body.decode()).items()}


class TestSearchingForAnIntentWhoseIdNeverReachedUs:
    def test_it_reads_no_more_intents_than_the_setting_allows(self, localstripe, settings, account, plan):
        settings.STRIPE_PAYMENT_SEARCH_LIMIT = 3
        for _ in range(4):  # other charges on the same Stripe account
            localstripe.post("/v1/payment_intents", amount="1000", currency="eur")
        add_card(account, localstripe)
        with charge_answers_lost(localstripe, settings):
            payment = buy(account, plan)
        proxy = LossyProxy(localstripe.url)
        settings.STRIPE_API_BASE = proxy.url
        try:
            with time_machine.travel(timezone.now() + timedelta(minutes=3)):
                payment = payments.payment_refresh(payment=payment)
        finally:
            proxy.close()
            settings.STRIPE_API_BASE = localstripe.url

        listings = [line for line in proxy.seen if line.startswith("GET /v1/payment_intents?")]
        assert listings and all(int(parse_qs(urlsplit(line.split()[1]).query)["limit"][0]) <= 3 for line in listings)
        assert len(listings) <= 2  # the customer's intents (refused by the stand-in), then the account's
        # Not found among those read proves nothing: it stays to be checked, never "not charged".
        assert payment.status == Payment.Status.PROCESSING

    def test_one_still_not_found_a_day_later_is_left_for_staff_and_the_student_may_buy_again(
        self, localstripe, settings, account, plan
    ):
        settings.STRIPE_PAYMENT_SEARCH_LIMIT = 3
        for _ in range(4):  # other charges on the same Stripe account
            localstripe.post("/v1/payment_intents", amount="1000", currency="eur")
        add_card(account, localstripe)
        with charge_answers_lost(localstripe, settings):
            payment = buy(account, plan)

        with time_machine.travel(timezone.now() + timedelta(hours=23)):
            assert payments_reconcile()[0].status == Payment.Status.PROCESSING
        with time_machine.travel(timezone.now() + timedelta(hours=25)):
            [left] = payments_reconcile()
            assert payments_reconcile() == []  # no more searching at Stripe every five minutes
            again = buy(account, plan)

        assert (left.pk, left.status, left.failure_code) == (
            payment.pk,
            Payment.Status.NEEDS_REVIEW,
            "intent_not_found",
        )
        assert left.failure_message == (
            f"No PaymentIntent for payment {payment.pk} among the 3 read. Look for metadata payment_id "
            f"{payment.pk} in Stripe's Dashboard. No hours were added."
        )
        assert again.status == Payment.Status.SUCCEEDED
        assert Lot.objects.get().payment == again

    def test_its_late_success_is_credited_so_that_a_second_purchase_can_be_refunded(
        self, localstripe, settings, account, plan, send, staff_user
    ):
        settings.STRIPE_PAYMENT_SEARCH_LIMIT = 3
        for _ in range(4):  # other charges on the same Stripe account
            localstripe.post("/v1/payment_intents", amount="1000", currency="eur")
        add_card(account, localstripe)
        with charge_answers_lost(localstripe, settings):
            payment = buy(account, plan)
        [intent] = [found for found in localstripe.payment_intents() if found["metadata"].get("payment_id")]

        with time_machine.travel(timezone.now() + timedelta(hours=25)):
            [left] = payments_reconcile()
            buy(account, plan)  # as the student is told they may
            send(samples.event("payment_intent.succeeded", intent))  # a late webhook, or fetch_missed_events

        assert left.failure_code == "intent_not_found"
        payment.refresh_from_db()
        assert (payment.status, payment.stripe_payment_intent_id) == (Payment.Status.SUCCEEDED, intent["id"])
        assert (payment.lot.minutes_purchased, payment.failure_code) == (600, "")
        account.refresh_from_db()
        assert account.balance_minutes == 1200  # both charges bought their hours
        refund = refunds.refund_issue(
            payment=payment, amount_cents=15000, minutes=600, reason="Bought twice", actor=staff_user
        )
        assert refund.status == "succeeded"

    def test_a_late_success_for_another_amount_records_what_stripe_charged_for_a_refund(
        self, localstripe, settings, account, plan, send, staff_user
    ):
        settings.STRIPE_PAYMENT_SEARCH_LIMIT = 3
        for _ in range(4):
            localstripe.post("/v1/payment_intents", amount="1000", currency="eur")
        add_card(account, localstripe)
        with charge_answers_lost(localstripe, settings):
            payment = buy(account, plan)
        [intent] = [found for found in localstripe.payment_intents() if found["metadata"].get("payment_id")]
        with time_machine.travel(timezone.now() + timedelta(hours=25)):
            payments_reconcile()

        proxy = LossyProxy(
            localstripe.url,
            canned={rf"^GET /v1/payment_intents/{intent['id']}": lambda body: (200, {**intent, "amount": 1500})},
        )
        settings.STRIPE_API_BASE = proxy.url
        try:
            send(samples.event("payment_intent.succeeded", intent))
        finally:
            proxy.close()
            settings.STRIPE_API_BASE = localstripe.url

        payment.refresh_from_db()
        assert (payment.status, payment.failure_code) == (Payment.Status.NEEDS_REVIEW, "amount_mismatch")
        assert (payment.stripe_payment_intent_id, payment.charged_cents, payment.charged) == (intent["id"], 1500, True)
        assert not Lot.objects.exists()
        refund = refunds.refund_issue(payment=payment, amount_cents=1500, minutes=0, reason="Refund", actor=staff_user)
        assert refund.status == "succeeded"

    def test_the_student_is_told_they_may_buy_again_as_they_can(self):
        assert "you may buy again" in payments.PAYMENT_UNDER_REVIEW.lower()
        assert "do not pay again" not in payments.PAYMENT_UNDER_REVIEW

    def test_it_reads_page_after_page_up_to_the_limit(self, localstripe, settings, account, plan):
        settings.STRIPE_PAYMENT_SEARCH_LIMIT = 150
        for _ in range(100):  # a whole page of other charges before ours
            localstripe.post("/v1/payment_intents", amount="1000", currency="eur")
        add_card(account, localstripe)
        with charge_answers_lost(localstripe, settings):
            payment = buy(account, plan)

        assert payments.payment_refresh(payment=payment).status == Payment.Status.SUCCEEDED

    def test_it_finds_one_within_the_limit(self, localstripe, settings, account, plan):
        settings.STRIPE_PAYMENT_SEARCH_LIMIT = 3
        add_card(account, localstripe)
        with charge_answers_lost(localstripe, settings):
            payment = buy(account, plan)

        assert payments.payment_refresh(payment=payment).status == Payment.Status.SUCCEEDED


def test_a_3d_secure_check_abandoned_whose_cancel_keeps_failing_is_left_for_staff_a_day_later(
    localstripe, settings, account, plan
):
    add_card(account, localstripe, "4000002760003184")
    waiting = buy(account, plan)
    unreachable_stripe(settings)
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert payments_reconcile()[0].status == Payment.Status.REQUIRES_ACTION  # abandoned: its cancel is tried
    with time_machine.travel(timezone.now() + timedelta(hours=47)):
        assert payments_reconcile()[0].status == Payment.Status.REQUIRES_ACTION  # and tried again

    with time_machine.travel(timezone.now() + timedelta(hours=49)):
        [left] = payments_reconcile()
        assert payments_reconcile() == []  # given up: no more attempts, no more log lines

    assert (left.status, left.failure_code) == (Payment.Status.NEEDS_REVIEW, "cancel_refused")
    assert left.failure_message == (
        f"Stripe did not cancel PaymentIntent {waiting.stripe_payment_intent_id} (waiting for 3-D Secure) "
        "in the day since it was abandoned. Cancel it in Stripe's Dashboard. No hours were added."
    )


class TestBlockedAccount:
    """Blocking stops a payment already waiting for 3-D Secure, and hands out no more secrets."""

    @pytest.fixture
    def waiting(self, localstripe, account, plan):
        add_card(account, localstripe, "4000002760003184")
        payment = buy(account, plan)
        assert payment.status == Payment.Status.REQUIRES_ACTION
        return payment

    def test_blocking_cancels_the_payment_waiting_for_3d_secure(
        self, localstripe, account, waiting, staff_user, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            account_block(account=account, actor=staff_user, reason="Confirmed card testing")

        waiting.refresh_from_db()
        assert (waiting.status, waiting.failure_code) == (Payment.Status.FAILED, "canceled")
        assert localstripe.get(f"/v1/payment_intents/{waiting.stripe_payment_intent_id}")["status"] == "canceled"

    def test_a_cancel_that_fails_is_retried_by_the_reconciliation(
        self, localstripe, settings, account, waiting, staff_user, django_capture_on_commit_callbacks
    ):
        unreachable_stripe(settings)
        with django_capture_on_commit_callbacks(execute=True):
            account_block(account=account, actor=staff_user, reason="Confirmed card testing")
        waiting.refresh_from_db()
        assert waiting.status == Payment.Status.REQUIRES_ACTION

        settings.STRIPE_API_BASE = localstripe.url
        payments_reconcile()  # its next run, minutes later: not the 24 hours of an abandoned check

        waiting.refresh_from_db()
        assert (waiting.status, waiting.failure_code) == (Payment.Status.FAILED, "canceled")
        assert localstripe.get(f"/v1/payment_intents/{waiting.stripe_payment_intent_id}")["status"] == "canceled"

    def test_a_cancel_stripe_keeps_refusing_for_a_day_is_left_for_staff(
        self, localstripe, settings, account, waiting, staff_user
    ):
        account_block(account=account, actor=staff_user, reason="Confirmed card testing")
        unreachable_stripe(settings)
        with time_machine.travel(timezone.now() + timedelta(hours=23)):
            assert payments_reconcile()[0].status == Payment.Status.REQUIRES_ACTION  # still trying

        with time_machine.travel(timezone.now() + timedelta(hours=25)):
            [left] = payments_reconcile()
            assert payments_reconcile() == []  # given up: no more attempts, no more log lines

        assert (left.status, left.failure_code) == (Payment.Status.NEEDS_REVIEW, "cancel_refused")
        assert left.failure_message == (
            f"Stripe did not cancel PaymentIntent {waiting.stripe_payment_intent_id} (waiting for 3-D Secure) "
            "in the day since the account was blocked. Cancel it in Stripe's Dashboard. No hours were added."
        )

    def test_one_left_for_staff_that_the_bank_completes_after_all_is_credited(
        self, localstripe, settings, account, waiting, staff_user, send
    ):
        account_block(account=account, actor=staff_user, reason="Confirmed card testing")
        unreachable_stripe(settings)
        with time_machine.travel(timezone.now() + timedelta(hours=25)):
            [left] = payments_reconcile()
        settings.STRIPE_API_BASE = localstripe.url
        intent_url = f"/v1/payment_intents/{waiting.stripe_payment_intent_id}"
        localstripe.browser_authenticate(localstripe.get(intent_url)["client_secret"], success=True)

        send(samples.event("payment_intent.succeeded", localstripe.get(intent_url)))

        assert left.failure_code == "cancel_refused"
        left.refresh_from_db()
        assert (left.status, left.lot.minutes_purchased) == (Payment.Status.SUCCEEDED, 600)  # Stripe took the money

    def test_no_client_secret_is_handed_out_for_a_blocked_account(self, localstripe, account, waiting, staff_user):
        account_block(account=account, actor=staff_user, reason="Confirmed card testing")  # its cancel still queued

        with pytest.raises(AccountBlocked):
            payments.payment_client_secret(payment=waiting)
