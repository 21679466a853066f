"""Failed events retry with backoff; missed webhooks and lost answers are found by the periodic jobs."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from billing import cards, events, samples
from billing.events import MAX_ATTEMPTS, retry_delay
from billing.models import LedgerEntry, Payment, PaymentMethod, WebhookEvent
from billing.payments import payments_reconcile
from billing.tests.builders import add_card, make_paid_payment, make_student
from billing.tests.localstripe import free_port
from billing.tests.network import LossyProxy, charge_answers_lost

pytestmark = pytest.mark.django_db


def stored(stripe_event):
    """Store an event as the endpoint would, without processing it yet."""
    return WebhookEvent.objects.create(
        stripe_event_id=stripe_event["id"], type=stripe_event["type"], payload=stripe_event
    )


def lost_answer_payment(localstripe, settings):
    """A payment Stripe charged whose answer never reached us."""
    with charge_answers_lost(localstripe, settings):
        payment = make_paid_payment(localstripe)
    assert payment.status == "processing"
    return payment


def test_a_handler_that_fails_is_retried_and_then_succeeds_once(localstripe, settings):
    payment = lost_answer_payment(localstripe, settings)
    [intent] = localstripe.payment_intents()
    event = stored(samples.event("payment_intent.succeeded", intent))
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # Stripe unreachable for the re-read

    failed = events.event_process(event_id=event.pk)

    assert failed.status == "failed" and failed.attempts == 1
    assert "ProviderUnavailable" in failed.last_error
    assert failed.next_attempt_at > timezone.now()
    settings.STRIPE_API_BASE = localstripe.url
    with time_machine.travel(failed.next_attempt_at + timedelta(seconds=1)):
        assert events.events_due() == [event.pk]
        done = events.event_process(event_id=event.pk)

    payment.refresh_from_db()
    assert done.status == "processed" and done.attempts == 2 and done.last_error == ""
    assert payment.status == "succeeded"
    assert LedgerEntry.objects.filter(kind="credit").count() == 1
    assert events.event_process(event_id=event.pk).attempts == 2  # finished events are left alone


def test_backoff_doubles_and_is_capped():
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(20) == timedelta(hours=1)


def test_an_event_about_an_unknown_object_waits_then_becomes_an_orphan(localstripe):
    payment = make_paid_payment(localstripe)
    refund = samples.refund(payment)
    refund["payment_intent"] = "pi_nobody_knows"
    event = stored(samples.event("refund.created", refund))

    result = events.event_process(event_id=event.pk)
    assert events.event_process(event_id=event.pk).attempts == 1  # not due again yet: left alone
    for attempt in range(2, MAX_ATTEMPTS + 1):
        with time_machine.travel(result.next_attempt_at + timedelta(seconds=1)):
            result = events.event_process(event_id=event.pk)
        assert result.attempts == attempt

    assert result.status == "orphan" and result.next_attempt_at is None
    assert events.events_due() == []


def test_staff_can_retry_every_failed_and_orphan_event(localstripe, django_capture_on_commit_callbacks):
    payment = make_paid_payment(localstripe)
    orphan_refund = samples.refund(payment, amount_cents=1500)
    orphan_refund["payment_intent"] = "pi_arrives_later"
    orphan = stored(samples.event("refund.created", orphan_refund))
    WebhookEvent.objects.filter(pk=orphan.pk).update(status="orphan", attempts=MAX_ATTEMPTS)
    broken_refund = {**orphan_refund, "id": "re_broken"}
    del broken_refund["amount"]  # a handler error, left failed for staff
    failed = stored(samples.event("refund.created", broken_refund))
    events.event_process(event_id=failed.pk)
    WebhookEvent.objects.filter(pk=failed.pk).update(attempts=MAX_ATTEMPTS, next_attempt_at=None)
    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id="pi_arrives_later")

    with django_capture_on_commit_callbacks(execute=True):
        assert events.events_retry() == 2

    orphan.refresh_from_db()
    failed.refresh_from_db()
    assert orphan.status == "processed"
    assert failed.status == "failed" and "KeyError" in failed.last_error  # still broken: stays for staff
    assert LedgerEntry.objects.filter(kind="reversal").count() == 1


def test_two_workers_never_process_one_event_at_once(localstripe):
    payment = make_paid_payment(localstripe)
    event = stored(samples.event("refund.created", samples.refund(payment)))
    WebhookEvent.objects.filter(pk=event.pk).update(status="processing", claimed_at=timezone.now())

    untouched = events.event_process(event_id=event.pk)

    assert untouched.status == "processing" and untouched.attempts == 0
    assert not LedgerEntry.objects.filter(kind="reversal").exists()
    with time_machine.travel(timezone.now() + events.CLAIM_TIMEOUT + timedelta(seconds=1)):
        assert events.events_due() == [event.pk]  # its worker died: another takes it over
        assert events.event_process(event_id=event.pk).status == "processed"


def test_the_reconciliation_job_settles_a_payment_whose_webhook_never_came(localstripe, settings):
    payment = lost_answer_payment(localstripe, settings)

    assert payments_reconcile() == []  # too recent: its answer may still be on its way
    with time_machine.travel(timezone.now() + timedelta(minutes=4)):
        settled = payments_reconcile()
        again = payments_reconcile()

    assert [p.status for p in settled] == ["succeeded"] and again == []
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert LedgerEntry.objects.filter(kind="credit").count() == 1


def test_a_payment_the_reconciliation_cannot_settle_is_logged_and_the_others_still_settled(
    localstripe, settings, caplog
):
    unreadable = make_paid_payment(localstripe, number="4000002760003184")  # left waiting for 3-D Secure
    answered_late = lost_answer_payment(localstripe, settings)
    # Stripe answers about the first in a shape we cannot read (here: the intent without its amount).
    intent = localstripe.get(f"/v1/payment_intents/{unreadable.stripe_payment_intent_id}")
    del intent["amount"]
    proxy = LossyProxy(
        localstripe.url, canned={rf"^GET /v1/payment_intents/{unreadable.stripe_payment_intent_id}$": (200, intent)}
    )
    settings.STRIPE_API_BASE = proxy.url
    try:
        with time_machine.travel(timezone.now() + timedelta(hours=25)):
            payments_reconcile()
    finally:
        proxy.close()

    unreadable.refresh_from_db()
    answered_late.refresh_from_db()
    assert unreadable.status == "requires_action"  # as it was: left for the next run and for staff
    assert answered_late.status == "succeeded"
    assert f"Could not reconcile payment {unreadable.pk}" in caplog.text


def test_missed_events_are_fetched_from_stripe_and_applied(localstripe, settings, django_capture_on_commit_callbacks):
    payment = lost_answer_payment(localstripe, settings)

    with django_capture_on_commit_callbacks(execute=True):
        first = events.events_fetch_missed()
    with django_capture_on_commit_callbacks(execute=True):
        second = events.events_fetch_missed()

    assert first >= 1 and second == 0
    fetched = WebhookEvent.objects.get(type="payment_intent.succeeded")
    assert (fetched.source, fetched.status) == ("poll", "processed")
    payment.refresh_from_db()
    assert payment.status == "succeeded"


class TestCardEvents:
    def test_a_card_confirmed_in_the_browser_but_never_saved_is_saved_by_the_webhook(self, localstripe):
        account = make_student()
        setup_intent = cards.card_setup_start(account=account)
        confirmed = localstripe.browser_confirm_setup(setup_intent, "4242424242424242")
        event = stored(samples.event("setup_intent.succeeded", confirmed))

        assert events.event_process(event_id=event.pk).status == "processed"
        assert PaymentMethod.objects.get(account=account).last4 == "4242"

    def test_a_card_detached_at_stripe_leaves_the_saved_cards(self, localstripe):
        account = make_student()
        card = add_card(account, localstripe)
        detached = localstripe.post(f"/v1/payment_methods/{card.stripe_payment_method_id}/detach")
        event = stored(samples.event("payment_method.detached", detached))

        events.event_process(event_id=event.pk)

        card.refresh_from_db()
        assert card.removed_at is not None and not card.is_default

    def test_a_deleted_customer_takes_its_cards_with_it(self, localstripe):
        account = make_student()
        card = add_card(account, localstripe)
        customer_id = account.stripe_customer_id
        event = stored(samples.event("customer.deleted", {"id": customer_id, "object": "customer", "deleted": True}))

        events.event_process(event_id=event.pk)

        account.refresh_from_db()
        card.refresh_from_db()
        assert account.stripe_customer_id == "" and card.removed_at is not None


def test_a_card_updated_at_stripe_gets_its_new_expiry(localstripe, settings):
    account = make_student()
    card = add_card(account, localstripe, exp_month=1, exp_year=2027)
    renewed = localstripe.get(f"/v1/payment_methods/{card.stripe_payment_method_id}")
    renewed["card"] = {**renewed["card"], "exp_month": 1, "exp_year": 2031}  # the network sent a new expiry
    proxy = LossyProxy(
        localstripe.url, canned={rf"^GET /v1/payment_methods/{card.stripe_payment_method_id}": (200, renewed)}
    )
    settings.STRIPE_API_BASE = proxy.url
    try:
        event = stored(samples.event("payment_method.updated", renewed))
        assert events.event_process(event_id=event.pk).status == "processed"
    finally:
        proxy.close()

    card.refresh_from_db()
    assert (card.exp_month, card.exp_year, card.removed_at) == (1, 2031, None)
