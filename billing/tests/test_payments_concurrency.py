"""Two pay clicks of one student racing each other while a payment waits for 3-D Secure: at most one
payment can ever be completed. Runs on SQLite and, in CI's second leg, on PostgreSQL."""

import threading
import time

import pytest
import requests

from billing import payments
from billing.models import Payment
from billing.tests.builders import add_card, make_plan, make_student
from billing.tests.concurrency import run_at_once
from billing.tests.localstripe import SECRET_KEY
from billing.tests.network import LossyProxy

# How much later the second click hears back from Stripe: far longer than the first click needs to
# create its payment and have Stripe answer that it, too, needs 3-D Secure.
SECOND_ANSWER_DELAY = 1.5


class CancelsOneAfterTheOther:
    """Stripe's cancel endpoint for one PaymentIntent, where both clicks' cancel requests arrive
    before either is answered; the first is answered at once, the second SECOND_ANSWER_DELAY later."""

    def __init__(self, localstripe, payment_intent_id):
        self.url = f"{localstripe.url}/v1/payment_intents/{payment_intent_id}/cancel"
        self.arrived = threading.Barrier(2, timeout=10)
        self.answered = 0
        self.lock = threading.Lock()

    def __call__(self, request_body):
        self.arrived.wait()
        with self.lock:
            answer = requests.post(self.url, auth=(SECRET_KEY, ""), timeout=5)
            self.answered += 1
            late = self.answered > 1
        if late:
            time.sleep(SECOND_ANSWER_DELAY)
        return answer.status_code, answer.json()


@pytest.mark.django_db(transaction=True)
def test_two_clicks_while_a_payment_awaits_3d_secure_leave_one_payment_to_complete(localstripe, settings):
    account = make_student()
    add_card(account, localstripe, "4000002760003184")
    plan = make_plan()
    left_waiting = payments.payment_start(
        account=account, token=payments.payment_token_issue(account=account, plan=plan, kind="purchase")
    )
    tokens = iter(
        [payments.payment_token_issue(account=account, plan=plan, kind=kind) for kind in ("top_up", "purchase")]
    )
    cancels = CancelsOneAfterTheOther(localstripe, left_waiting.stripe_payment_intent_id)
    proxy = LossyProxy(
        localstripe.url, canned={rf"^POST /v1/payment_intents/{left_waiting.stripe_payment_intent_id}/cancel$": cancels}
    )
    settings.STRIPE_API_BASE = proxy.url
    next_token = threading.Lock()

    def click():
        with next_token:
            token = next(tokens)
        return payments.payment_start(account=account, token=token)

    try:
        results, errors = run_at_once(click, 2)
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url

    assert errors == []
    assert cancels.answered == 2  # both clicks were past their look at unfinished payments
    waiting = Payment.objects.filter(status=Payment.Status.REQUIRES_ACTION)
    assert waiting.count() == 1
    # The later click leads back to the payment the earlier one started: it is not a new charge.
    assert {payment.pk for payment in results} == {waiting.get().pk}
    assert len(localstripe.payment_intents()) == 2  # the one left waiting (now cancelled), and that one
