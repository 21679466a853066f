"""The reconciliation job reads Stripe's listing of PaymentIntents when many payments are due, instead
of asking about each one: same outcomes, a page of 100 intents per request.

localstripe lists PaymentIntents but refuses Stripe's `created` and `customer` filters (400
"Unexpected created") and lists oldest first. `StripeListing` answers those listings at the HTTP
boundary the way Stripe's API reference describes them (a list object, newest first, `limit` a page,
the next page after `starting_after`), from localstripe's own intents; every other request goes
through to localstripe.
"""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import time_machine
from django.utils import timezone

from billing import stripe_gateway
from billing.models import LedgerEntry, Payment
from billing.payments import payments_reconcile
from billing.tests.builders import make_paid_payment, make_student
from billing.tests.localstripe import SECRET_KEY
from billing.tests.network import LossyProxy, charge_answers_lost

pytestmark = pytest.mark.django_db

GOOD_CARD, DECLINING_CARD, THREE_D_SECURE_CARD = "4242424242424242", "4000000000000341", "4000002760003184"


class StripeListing:
    """localstripe behind a LossyProxy that answers the listings it refuses itself."""

    def __init__(self, localstripe):
        self.localstripe = localstripe
        self.proxy = LossyProxy(
            localstripe.url,
            canned={r"^GET /v1/payment_intents\?(.*&)?(created|customer)": self._listing},
        )
        self.url = self.proxy.url

    def close(self):
        self.proxy.close()

    def _listing(self, query_string):
        query = {key: values[-1] for key, values in parse_qs(query_string.decode()).items()}
        return 200, self.page(query)

    def page(self, query):
        intents = self._all_newest_first()
        if "customer" in query:
            intents = [intent for intent in intents if intent.get("customer") == query["customer"]]
        intents = [
            intent
            for intent in intents
            if int(query.get("created[gte]", 0)) <= intent["created"] <= int(query.get("created[lte]", 2**62))
        ]
        if "starting_after" in query:
            ids = [intent["id"] for intent in intents]
            intents = intents[ids.index(query["starting_after"]) + 1 :]
        limit = int(query.get("limit", 10))
        has_more = len(intents) > limit
        return {"object": "list", "data": intents[:limit], "has_more": has_more, "url": "/v1/payment_intents"}

    def _all_newest_first(self):
        everything, params = [], {"limit": 100}
        while True:
            answer = requests.get(
                f"{self.localstripe.url}/v1/payment_intents", params=params, auth=(SECRET_KEY, ""), timeout=5
            ).json()
            everything += answer["data"]
            if not answer["has_more"]:
                break
            params["starting_after"] = answer["data"][-1]["id"]
        # localstripe lists oldest first; Stripe newest first (those made in one second, last made first).
        made = {intent["id"]: n for n, intent in enumerate(everything)}
        return sorted(everything, key=lambda intent: (intent["created"], made[intent["id"]]), reverse=True)

    def sent(self, kind):
        """The requests of one kind: "listing" (by creation time), "search" (by customer), "retrieve", "cancel"."""

        def kind_of(line):
            method, path = line.split(" ", 1)
            url = urlsplit(path)
            if url.path == "/v1/payment_intents" and method == "GET":
                return "search" if "customer" in parse_qs(url.query) else "listing"
            if url.path.startswith("/v1/payment_intents/"):
                return "cancel" if url.path.endswith("/cancel") else "retrieve" if method == "GET" else "other"
            return "other"

        return [line for line in self.proxy.seen if kind_of(line) == kind]


@pytest.fixture
def stripe_listing(localstripe, settings):
    fake = StripeListing(localstripe)
    yield fake
    fake.close()
    settings.STRIPE_API_BASE = localstripe.url


def through(fake, settings):
    settings.STRIPE_API_BASE = fake.url


def lost_answer_payment(localstripe, settings, number=GOOD_CARD):
    """A payment Stripe took (charged, declined or sent to 3-D Secure) whose answer never reached us:
    processing, without a PaymentIntent id."""
    with charge_answers_lost(localstripe, settings):
        payment = make_paid_payment(localstripe, account=make_student(), number=number)
    assert (payment.status, payment.stripe_payment_intent_id) == (Payment.Status.PROCESSING, None)
    return payment


def test_ten_payments_due_are_settled_from_one_listing_page_each_as_it_would_be_alone(
    localstripe, settings, stripe_listing, plan
):
    charged = [lost_answer_payment(localstripe, settings) for _ in range(7)]
    declined = lost_answer_payment(localstripe, settings, DECLINING_CARD)
    sent_to_3d_secure = lost_answer_payment(localstripe, settings, THREE_D_SECURE_CARD)
    abandoned = make_paid_payment(localstripe, account=make_student(), number=THREE_D_SECURE_CARD)
    assert abandoned.status == Payment.Status.REQUIRES_ACTION and abandoned.stripe_payment_intent_id
    through(stripe_listing, settings)

    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        settled = payments_reconcile()
        again = payments_reconcile()

    by_pk = {payment.pk: payment for payment in settled}
    assert [by_pk[payment.pk].status for payment in charged] == [Payment.Status.SUCCEEDED] * 7
    assert (by_pk[declined.pk].status, by_pk[declined.pk].failure_code) == (Payment.Status.FAILED, "card_declined")
    for cancelled in (sent_to_3d_secure, abandoned):  # waiting for a check nobody will finish: cancelled
        assert (by_pk[cancelled.pk].status, by_pk[cancelled.pk].failure_code) == (Payment.Status.FAILED, "canceled")
    assert again == []
    assert LedgerEntry.objects.filter(kind="credit").count() == 7
    assert all(payment.account.balance_minutes == 600 for payment in Payment.objects.filter(status="succeeded"))
    [listing] = stripe_listing.sent("listing")
    assert len(stripe_listing.sent("cancel")) == 2
    assert stripe_listing.sent("retrieve") == stripe_listing.sent("search") == []
    # The intents made while those payments were made, with a minute of clock skew either side, and
    # the slowest charge request after the last.
    query = parse_qs(urlsplit(listing.split(" ", 1)[1]).query)
    due = [*charged, declined, sent_to_3d_secure, abandoned]
    assert query["limit"] == ["100"]
    assert int(query["created[gte]"][0]) == int((min(p.created_at for p in due) - timedelta(minutes=1)).timestamp())
    assert int(query["created[lte]"][0]) >= int((max(p.created_at for p in due) + timedelta(minutes=3)).timestamp())


def test_with_too_few_payments_due_for_a_page_each_is_asked_about_alone(localstripe, settings, stripe_listing, plan):
    due = [lost_answer_payment(localstripe, settings) for _ in range(2)]
    through(stripe_listing, settings)

    with time_machine.travel(timezone.now() + timedelta(minutes=4)):
        settled = payments_reconcile()

    assert [payment.status for payment in settled] == [Payment.Status.SUCCEEDED] * 2
    assert {payment.pk for payment in settled} == {payment.pk for payment in due}
    assert stripe_listing.sent("listing") == []
    assert len(stripe_listing.sent("search")) == 2  # their ids never reached us: looked for by customer


def test_payments_the_listing_pages_worth_reading_did_not_bring_are_asked_about_alone(
    localstripe, settings, stripe_listing, plan
):
    due = [lost_answer_payment(localstripe, settings) for _ in range(10)]
    for _ in range(100):  # the account's newer charges fill the one page that ten payments are worth
        localstripe.post("/v1/payment_intents", amount="1000", currency="eur")
    through(stripe_listing, settings)

    with time_machine.travel(timezone.now() + timedelta(minutes=4)):
        settled = payments_reconcile()

    assert [payment.status for payment in settled] == [Payment.Status.SUCCEEDED] * 10
    assert len(stripe_listing.sent("listing")) == 1
    assert len(stripe_listing.sent("search")) == len(due)
    assert LedgerEntry.objects.filter(kind="credit").count() == 10


def test_on_the_stand_in_which_refuses_the_date_filter_the_payments_are_still_settled(localstripe, settings, plan):
    due = [lost_answer_payment(localstripe, settings) for _ in range(10)]

    with time_machine.travel(timezone.now() + timedelta(minutes=4)):
        settled = payments_reconcile()

    assert [payment.status for payment in settled] == [Payment.Status.SUCCEEDED] * len(due)
    assert LedgerEntry.objects.filter(kind="credit").count() == 10


def test_the_gateway_reads_the_listing_page_after_page_newest_first(localstripe, settings, stripe_listing):
    before = timezone.now() - timedelta(minutes=1)
    made = [localstripe.post("/v1/payment_intents", amount="1000", currency="eur")["id"] for _ in range(150)]
    through(stripe_listing, settings)

    pages = list(stripe_gateway.payment_intents_created(since=before, until=timezone.now() + timedelta(minutes=1)))

    assert [len(page) for page in pages] == [100, 50]
    assert [intent.id for page in pages for intent in page] == made[::-1]
    [first, second] = stripe_listing.sent("listing")
    assert "starting_after" not in first and f"starting_after={made[50]}" in second


def test_a_listed_intent_that_cannot_be_read_is_asked_about_alone(localstripe, settings, stripe_listing, plan, caplog):
    due = [lost_answer_payment(localstripe, settings) for _ in range(10)]
    through(stripe_listing, settings)
    page = stripe_listing.page
    unreadable = due[0]

    def page_with_one_unreadable(query):
        answer = page(query)
        for intent in answer["data"]:
            if intent["metadata"].get("payment_id") == str(unreadable.pk) and "customer" not in query:
                del intent["amount"]
        return answer

    stripe_listing.page = page_with_one_unreadable

    with time_machine.travel(timezone.now() + timedelta(minutes=4)):
        settled = payments_reconcile()

    assert [payment.status for payment in settled] == [Payment.Status.SUCCEEDED] * len(due)
    assert len(stripe_listing.sent("search")) == 1  # the unreadable one, looked for alone (and read then)
    assert "Stripe listed a PaymentIntent we cannot read" in caplog.text
