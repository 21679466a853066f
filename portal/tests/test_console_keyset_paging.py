"""The console's payments table pages by its sort key (portal.tables.table_seek): every page shows
the rows that counting from the top would show, in every sort and under filters, a deep page costs
the queries of the first, and a key a person edits by hand shows the first page, never an error."""

import html
import re
from datetime import timedelta
from itertools import count
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import Payment
from billing.tests.builders import credit, make_plan, make_student
from portal.console.views.common import PER_PAGE
from portal.tables import SEEK_EPOCH

pytestmark = pytest.mark.django_db
URL = reverse("console:payments")
PRICES = (8000, 15000, 28000)
STATUSES = ("succeeded", "failed", "processing", "requires_action", "needs_review", "resolved")
SORTS = ["", "created_at", "-amount_cents", "amount_cents", "status", "-status"]
_keys = count(1)


def add_payment(account, plan, *, status, amount_cents, created_at):
    lot = credit(account, 60) if status == "succeeded" else None  # a success always has its lot
    payment = Payment.objects.create(
        account=account,
        plan=plan,
        kind="purchase",
        amount_cents=amount_cents,
        currency="EUR",
        minutes=60,
        validity_days=90,
        status=status,
        idempotency_key=f"paging-{next(_keys)}",
        lot=lot,
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=created_at)  # created_at is set on insert
    return payment


@pytest.fixture
def history():
    """82 payments (four pages) of three students: three at each moment (ties broken by id), three
    prices and every status, so that each sort has long runs of equal values across pages."""
    plan = make_plan()
    students = [make_student(f"paging{number}@example.com") for number in range(3)]
    start = timezone.now() - timedelta(days=10)
    for number in range(3 * PER_PAGE + 7):
        add_payment(
            students[number % 3],
            plan,
            status=STATUSES[number % len(STATUSES)],
            amount_cents=PRICES[(number // 2) % 3],
            created_at=start + timedelta(minutes=number // 3),
        )
    return Payment.objects.all()


def expected_pages(payments, sort):
    """The rows of each page as counting from the top shows them: sorted by the column, then by id,
    both the same way."""
    field = sort.lstrip("-") or "created_at"
    descending = sort.startswith("-") or not sort
    ordered = sorted(payments, key=lambda payment: (getattr(payment, field), payment.pk), reverse=descending)
    ids = [payment.pk for payment in ordered]
    return [ids[start : start + PER_PAGE] for start in range(0, len(ids), PER_PAGE)]


def rows(response):
    body = response.content.decode()
    return [int(pk) for pk in re.findall(r'<td data-label="Date" ><a href="/console/payments/(\d+)/"', body)]


def pager_status(response):
    found = re.search(r'class="pager-status">([^<]+)<', response.content.decode())
    return found.group(1) if found else None


def link(response, rel):
    found = re.search(rf'rel="{rel}" href="([^"]+)"', response.content.decode())
    return URL + html.unescape(found.group(1)) if found else None


def walk(client, url):
    """Follow Next from `url` to the last page: [(status text, row ids)] of every page."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append((pager_status(response), rows(response)))
        url = link(response, "next")
    return pages


@pytest.mark.parametrize("sort", SORTS)
def test_following_next_shows_every_page_as_counted_from_the_top(finance_client, history, sort):
    pages = walk(finance_client, f"{URL}?sort={sort}" if sort else URL)
    expected = expected_pages(history, sort)
    assert [ids for _status, ids in pages] == expected
    assert [status for status, _ids in pages] == ["Page 1", "Page 2", "Page 3", "Page 4"]


@pytest.mark.parametrize("sort", SORTS)
def test_a_filtered_table_pages_the_same_way(finance_client, history, sort):
    statuses = ["succeeded", "failed", "processing", "requires_action"]
    pages = walk(
        finance_client, f"{URL}?{urlencode({'status': statuses, 'amount_min': 100, 'sort': sort}, doseq=True)}"
    )
    wanted = [payment for payment in history if payment.status in statuses and payment.amount_cents >= 10000]
    assert len(wanted) > PER_PAGE
    assert [ids for _status, ids in pages] == expected_pages(wanted, sort)


@pytest.mark.parametrize("sort", SORTS)
def test_previous_goes_back_through_the_same_pages(finance_client, history, sort):
    url = f"{URL}?sort={sort}"
    for _ in range(3):
        url = link(finance_client.get(url), "next")
    last = finance_client.get(url)
    assert pager_status(last) == "Page 4" and link(last, "next") is None
    back, url = [], link(last, "prev")
    while url:
        response = finance_client.get(url)
        back.append((pager_status(response), rows(response)))
        url = link(response, "prev")
    expected = expected_pages(history, sort)
    assert back == [("Page 3", expected[2]), ("Page 2", expected[1]), ("Page 1", expected[0])]


@pytest.mark.parametrize("sort", SORTS)
def test_a_page_number_without_a_key_shows_that_page(finance_client, history, sort):
    """An old link or a typed number (`?page=3`) is found by counting, and its links carry keys."""
    response = finance_client.get(URL, {"sort": sort, "page": 3})
    assert pager_status(response) == "Page 3"
    assert rows(response) == expected_pages(history, sort)[2]
    assert "after=" in link(response, "next") and "before=" in link(response, "prev")


def test_a_page_number_past_the_end_shows_the_first_page(finance_client, history):
    response = finance_client.get(URL, {"page": 5})
    assert pager_status(response) == "Page 1"
    assert rows(response) == expected_pages(history, "")[0]


def test_a_payment_made_meanwhile_does_not_show_a_row_twice(finance_client, history):
    pages = expected_pages(history, "")
    first = finance_client.get(URL)
    newest = history.order_by("-created_at", "-id").first()
    add_payment(newest.account, newest.plan, status="failed", amount_cents=8000, created_at=timezone.now())
    second = finance_client.get(link(first, "next"))
    assert rows(second) == pages[1]
    assert not set(rows(first)) & set(rows(second))


@pytest.mark.parametrize(
    "query",
    [
        {"page": 2, "after": "not-a-key"},
        {"page": 2, "after": ""},
        {"page": 2, "after": "1.2.3"},
        {"page": 2, "after": "99999999999999999999.1"},  # microseconds past any date
        {"page": 2, "after": "9223372036854775807.1"},  # past year 9999
        {"page": 2, "after": "1700000000000000.-5"},
        {"page": 2, "after": "1700000000000000.0"},
        {"page": 2, "after": "1700000000000000.99999999999999999999"},
        {"page": 2, "after": "1700000000000000"},
        {"page": 2, "after": "１７００.1"},  # digits, but not ASCII ones
        {"page": 2, "after": "1700000000000000.1", "before": "1700000000000000.1"},
        {"page": 2, "before": "nonsense.\x00"},
        {"page": 2, "sort": "status", "after": "shipped.5"},
        {"page": 2, "sort": "status", "after": "succeeded\x00.5"},
        {"page": 2, "sort": "amount_cents", "after": "80.00.5"},
        {"page": 2, "sort": "amount_cents", "after": "99999999999999999999.5"},
        {"page": "x", "after": "1700000000000000.1"},
    ],
)
def test_a_key_that_is_not_one_shows_the_first_page(finance_client, history, query):
    response = finance_client.get(URL, query)
    assert response.status_code == 200
    assert pager_status(response) == "Page 1"
    assert rows(response) == expected_pages(history, query.get("sort", ""))[0]


def test_a_key_past_the_last_row_shows_the_first_page(finance_client, history):
    oldest = history.order_by("created_at", "id").first()
    page_four = walk(finance_client, URL)[-1]
    assert page_four[1][-1] == oldest.pk
    response = finance_client.get(URL, {"page": 5, "after": f"{_micros(oldest.created_at)}.{oldest.pk}"})
    assert pager_status(response) == "Page 1"
    assert rows(response) == expected_pages(history, "")[0]


def test_the_first_page_ignores_a_key(finance_client, history):
    """The sort links keep the query string and go to page 1: a key left in it changes nothing."""
    response = finance_client.get(URL, {"page": 1, "sort": "amount_cents", "after": "15000.3"})
    assert rows(response) == expected_pages(history, "amount_cents")[0]
    assert link(response, "prev") is None


@pytest.mark.parametrize("sort", ["", "amount_cents", "-status"])
def test_a_deep_page_costs_the_queries_of_the_first(finance_client, history, sort):
    first = f"{URL}?sort={sort}"
    deep = first
    for _ in range(3):
        deep = link(finance_client.get(deep), "next")
    by_number = f"{URL}?sort={sort}&page=4"
    counted = {}
    for name, url in (("first", first), ("deep", deep), ("by number", by_number)):
        with CaptureQueriesContext(connection) as queries:
            assert finance_client.get(url).status_code == 200
        counted[name] = len(queries)
    assert counted["deep"] == counted["first"] == counted["by number"]


def test_the_pager_of_a_swapped_table_carries_the_keys(finance_client, history):
    url = link(finance_client.get(URL), "next")
    response = finance_client.get(url, headers={"HX-Request": "true", "HX-Target": "console-table"})
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="console-table"') and "<html" not in body
    assert pager_status(response) == "Page 2"
    assert rows(response) == expected_pages(history, "")[1]
    assert "after=" in link(response, "next")


def test_the_student_page_still_counts_its_payments(finance_client, history):
    """The student's page shows the same payments table paged by number ("Page 1 of 2")."""
    account = history.first().account
    response = finance_client.get(reverse("console:student", args=[account.pk]))
    assert re.search(r'Payments: pages">.*?pager-status">Page 1 of 2<', response.content.decode(), re.DOTALL)


def _micros(moment):
    return (moment - SEEK_EPOCH) // timedelta(microseconds=1)
