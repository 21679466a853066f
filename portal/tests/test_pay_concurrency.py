"""Twenty simultaneous clicks on one pay button, over real HTTP: one PaymentIntent, one lot.

localstripe ignores Idempotency-Key, so this is our database's guarantee (the unique token and
the account row lock), not Stripe's. Runs on SQLite and, in CI's second leg, on PostgreSQL.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client

from billing.models import LedgerEntry, Lot, Payment
from billing.payments import payment_token_issue
from billing.tests.builders import add_card, make_plan, make_student

CLICKS = 20


def browser_session(live_server, user):
    """A requests session signed in as `user`, with the CSRF cookie a page visit would give it."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
    session.get(f"{live_server.url}/cards/", timeout=10).raise_for_status()
    assert client.session[SESSION_KEY] == str(user.pk)
    return session


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_clicks_charge_once(live_server, localstripe):
    account = make_student()
    add_card(account, localstripe)
    plan = make_plan()
    token = payment_token_issue(account=account, plan=plan, kind="top_up")
    session = browser_session(live_server, account.user)
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "HX-Request": "true", "Referer": live_server.url}

    def click(_):
        return session.post(f"{live_server.url}/pay/", data={"token": token}, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=CLICKS) as pool:
        responses = list(pool.map(click, range(CLICKS)))

    assert [response.status_code for response in responses] == [200] * CLICKS
    assert len(localstripe.payment_intents()) == 1
    assert Payment.objects.count() == 1
    assert Lot.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="credit").count() == 1
    account.refresh_from_db()
    assert account.balance_minutes == plan.minutes
    assert sum("Payment received." in response.text for response in responses) >= 1
