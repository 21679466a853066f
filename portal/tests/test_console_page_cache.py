"""The console's payments and overview come from the cache while the console's version stays:
whatever changes what they show (a payment, its student, card or plan, a refund, a dispute, a grant,
a fraud flag, a failed event) renews it once it commits, and the page served after the change is
exactly the page rendered afresh."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing import samples
from billing.events import events_retry
from billing.fraud.review import fraud_flag_clear
from billing.models import FraudFlag, WebhookEvent
from billing.tests.builders import credit, make_plan, make_staff, make_student
from conftest import console_sign_in
from portal.tests.test_console_queries import grow
from portal.tests.test_page_cache import (
    _MINTED,
    _blocked,
    _card_removed,
    _disputed,
    _hours_granted,
    _package_bought,
    _refunded,
    _session_recorded,
    _subscribed,
)

pytestmark = pytest.mark.django_db
URL = "/console/payments/"
FILTERED = "/console/payments/?status=succeeded&amount_min=100"
OVERVIEW = "/console/"


def page(client, url=URL):
    response = client.get(url)
    assert response.status_code == 200
    return _MINTED.sub(r"\1…", response.content.decode())


def assert_served_page_is_fresh(client, url=URL):
    served = page(client, url)
    cache.clear()
    assert served == page(client, url)


@pytest.fixture
def finance_client(finance_client):
    """Signed in, past the page with the "signed in" message (a page with a message is never kept)."""
    finance_client.get("/console/")
    return finance_client


@pytest.fixture
def student(finance_user):
    grow(3, finance_user)  # other students' payments on the page
    make_plan()
    account = make_student("pat.payer@example.com")
    credit(account, 600)
    intent = {"id": "pi_not_ours", "object": "payment_intent", "amount": 100, "currency": "eur", "metadata": {}}
    event = samples.event("payment_intent.succeeded", intent, event_id="evt_failed_once")
    WebhookEvent.objects.create(
        stripe_event_id=event["id"], type=event["type"], payload=event, status=WebhookEvent.Status.FAILED
    )
    return account


def _flag_cleared(account, staff):
    flag = FraudFlag.objects.filter(status=FraudFlag.Status.OPEN).first()
    fraud_flag_clear(flag=flag, actor=staff, reason="Known customer")


def _failed_event_retried(account, staff):
    """The event that failed (a bug since fixed, say) retried from the console: processed this time."""
    events_retry(event_ids=[WebhookEvent.objects.get(stripe_event_id="evt_failed_once").pk])


# The changes the console's pages show, each through the service the product uses, and some a page
# does not show (a session recorded, a block) that still renew the version.
CHANGES = [
    _package_bought,
    _refunded,
    _disputed,
    _subscribed,
    _card_removed,
    _session_recorded,
    _blocked,
    _hours_granted,
    _flag_cleared,
    _failed_event_retried,
]
# Those that change what each page shows (a card removed shows on its payments only, and this student
# has none; a subscription's €99 invoice is under the filter's €100).
SHOWN = {
    URL: {_package_bought, _refunded, _disputed, _subscribed},
    FILTERED: {_package_bought, _refunded, _disputed},
    OVERVIEW: {
        _package_bought,
        _refunded,
        _disputed,
        _subscribed,
        _hours_granted,
        _flag_cleared,
        _failed_event_retried,
    },
}


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__.strip("_"))
@pytest.mark.parametrize("url", [URL, FILTERED, OVERVIEW], ids=["page 1", "filtered", "overview"])
def test_every_change_to_a_payment_shows_on_the_served_page(
    request, finance_client, student, change, url, django_capture_on_commit_callbacks
):
    needs_stripe = "localstripe" in change.__code__.co_varnames
    extra = [request.getfixturevalue("localstripe")] if needs_stripe else []
    before = page(finance_client, url)

    with django_capture_on_commit_callbacks(execute=True):
        change(student, make_staff(), *extra)

    assert_served_page_is_fresh(finance_client, url)
    assert (page(finance_client, url) != before) is (change in SHOWN[url])


def test_a_students_new_email_and_a_renamed_plan_show_at_once(
    finance_client, student, localstripe, django_capture_on_commit_callbacks
):
    _package_bought(student, None, localstripe)
    plan = student.payments.get().plan
    page(finance_client)

    with django_capture_on_commit_callbacks(execute=True):
        student.user.email = "pat.renamed@example.com"
        student.user.save()
    assert "pat.renamed@example.com" in page(finance_client)

    with django_capture_on_commit_callbacks(execute=True):
        plan.name = "Standard plus"
        plan.save()
    assert "Standard plus" in page(finance_client)
    assert_served_page_is_fresh(finance_client)


@pytest.mark.parametrize("url", [URL, OVERVIEW], ids=["payments", "overview"])
def test_a_page_asked_again_with_nothing_changed_is_served_without_reading_billing(finance_client, student, url):
    before = page(finance_client, url)

    with CaptureQueriesContext(connection) as queries:
        again = page(finance_client, url)

    assert again == before
    # The session, the user, their permissions (two: Support or Finance), their TOTP authenticator
    # (the second factor's check): no payment, refund or event is read.
    assert len(queries) <= 5, [query["sql"] for query in queries]
    read = " ".join(query["sql"] for query in queries)
    assert not any(f'"billing_{table}"' in read for table in ("payment", "refund", "dispute", "webhookevent"))


def test_each_staff_member_gets_their_own_page(finance_client, finance_user, support_user, student):
    finance_page = page(finance_client)
    support_page = page(console_sign_in(Client(), support_user))

    assert finance_user.email in finance_page and finance_user.email not in support_page
    assert support_user.email in support_page
