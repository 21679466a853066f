"""Every student page costs a handful of queries, however long the history: at most
STUDENT_PAGE_QUERIES, counted on a cold cache. The dashboard, which reads the most, costs more when
it is rendered (after a change) and two when it is served from the cache (test_page_cache.py)."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.notifications import alerts_scan
from billing.models import PaymentMethod, Usage
from billing.tests.builders import credit, make_plan, make_student

STUDENT_PAGE_QUERIES = 8
# The session; the user with the account; lots; cards; packages, the live subscription and the plans
# to subscribe to; the purchase history's payments and its lots no payment made; the sessions' count
# and page.
DASHBOARD_RENDER_QUERIES = 11


@pytest.fixture
def long_history(client, db):
    account = make_student()
    plan = make_plan()
    lots = [credit(account, 3000, days_valid=365, bought_days_ago=n, plan=plan) for n in range(20)]
    Usage.objects.bulk_create(
        Usage(account=account, minutes=30, occurred_at=timezone.now() - timedelta(hours=n), tutor="T", subject="S")
        for n in range(500)
    )
    PaymentMethod.objects.create(
        account=account, stripe_payment_method_id="pm_budget", brand="visa", last4="4242",
        exp_month=12, exp_year=2034, is_default=True,
    )  # fmt: skip
    alerts_scan()
    client.force_login(account.user)
    return lots[0]


PAGES = [
    ("student:dashboard", DASHBOARD_RENDER_QUERIES),
    ("student:lot_detail", STUDENT_PAGE_QUERIES),
    ("student:subscription", STUDENT_PAGE_QUERIES),
    ("student:receipts", STUDENT_PAGE_QUERIES),
    ("student:alerts", STUDENT_PAGE_QUERIES),
    ("student:account", STUDENT_PAGE_QUERIES),
    ("student:cards", STUDENT_PAGE_QUERIES),
]


@pytest.mark.parametrize(("name", "budget"), PAGES, ids=[name for name, _ in PAGES])
def test_every_student_page_keeps_to_the_budget(client, long_history, name, budget):
    url = reverse(name, args=[long_history.pk]) if name == "student:lot_detail" else reverse(name)
    client.get(url)  # first-use lookups (content types, the session) out of the count
    cache.clear()

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)

    assert response.status_code == 200
    assert len(queries) <= budget, "\n".join(query["sql"][:120] for query in queries)
