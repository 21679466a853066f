"""The student dashboard: balance first, lots, history tables, plans; HTMX fragments; query budget."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import Account, PaymentMethod, Plan, Usage
from billing.tests.builders import credit, make_student, use

URL = reverse("student:dashboard")


def test_it_sends_anonymous_visitors_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_it_shows_the_balance_and_the_next_expiry(student_client, student):
    credit(student, 600, days_valid=60)
    credit(student, 210, days_valid=5)

    response = student_client.get(URL)

    assert response.status_code == 200
    text = response.content.decode()
    assert '<p class="balance-figure" data-testid="balance">13.5 h</p>' in text
    expiry = timezone.localtime(timezone.now() + timedelta(days=5))
    assert f"3.5 h expire on {expiry:%-d %b}" in text
    assert "(in 5 days)" in text


def test_hours_past_their_expiry_stop_counting_before_the_job_books_them(student_client, student):
    credit(student, 600, days_valid=30, bought_days_ago=31)
    credit(student, 120, days_valid=30)

    text = student_client.get(URL).content.decode()

    assert 'data-testid="balance">2 h<' in text
    assert "Expired packages (1)" in text


def test_it_lists_active_lots_and_greys_expired_ones(student_client, student):
    credit(student, 600, days_valid=90, name="Standard")
    credit(student, 300, days_valid=4, name="Starter")
    use(student, 90)
    expired = credit(student, 1200, days_valid=30, bought_days_ago=60, name="Intensive")

    text = student_client.get(URL).content.decode()

    assert "<strong>3.5 h</strong> left of 5 h" in text
    assert "Expires soon" in text
    assert "<strong>10 h</strong> left of 10 h" in text
    assert "Expired packages (1)" in text
    assert f"Expired {timezone.localtime(expired.expires_at):%-d %b %Y} · 20 h unused" in text


def test_a_low_balance_shows_a_banner_with_the_accounts_own_threshold(student_client, student):
    credit(student, 90)
    Account.objects.filter(pk=student.pk).update(low_balance_threshold_minutes=180)

    text = student_client.get(URL).content.decode()

    assert "Low balance." in text
    assert "Only 1.5 h left" in text
    assert "reminder level of 3 h" in text


def test_exactly_the_default_threshold_is_not_low(student_client, student):
    credit(student, 120)

    text = student_client.get(URL).content.decode()

    assert student.low_balance_threshold_minutes == 120
    assert "Low balance." not in text


def test_expired_packages_sit_in_a_collapsed_section(student_client, student):
    credit(student, 600, days_valid=30, bought_days_ago=60, name="Intensive")

    text = student_client.get(URL).content.decode()

    details = text[text.index('<details class="expired-lots">') : text.index("</details>")]
    assert "<summary>Expired packages (1)</summary>" in details
    assert "Intensive" in details and "is-expired" in details


def test_no_banner_when_the_balance_is_healthy(student_client, student):
    credit(student, 600)

    text = student_client.get(URL).content.decode()

    assert "Low balance." not in text
    assert "Welcome!" not in text


def test_a_new_student_sees_a_welcome_and_the_plans(student_client):
    Plan.objects.create(name="Starter", minutes=300, price_cents=8000, validity_days=60)
    Plan.objects.create(name="Retired", minutes=300, price_cents=1000, validity_days=60, is_active=False)

    text = student_client.get(URL).content.decode()

    assert 'data-testid="balance">0 h<' in text
    assert "You have no tutoring hours yet" in text
    assert 'href="#plans"' in text
    assert "Starter" in text and "€80.00" in text and "€16.00 per hour" in text
    assert "Retired" not in text
    assert "Low balance." not in text


def test_usage_history_is_sortable_and_paginated_without_javascript(student_client, student):
    credit(student, 6000, bought_days_ago=30)
    for day, minutes in enumerate([45, 90, 60] * 5):
        use(student, minutes, days_ago=day + 1, subject=f"Topic {day:02d}")

    by_date = student_client.get(URL).content.decode()
    page_two = student_client.get(URL, {"usage-page": 2}).content.decode()
    longest_first = student_client.get(URL, {"usage-sort": "-minutes"}).content.decode()
    shortest_first = student_client.get(URL, {"usage-sort": "minutes"}).content.decode()

    assert by_date.index("Topic 00") < by_date.index("Topic 09")
    assert "Topic 10" not in by_date and "Topic 10" in page_two
    assert "Page 2 of 2" in page_two
    assert "1 h 30 min" in longest_first and "45 min" not in longest_first
    assert "45 min" in shortest_first and "1 h 30 min" not in shortest_first


@pytest.mark.parametrize(
    "query",
    [
        {"usage-page": "999"},
        {"usage-page": "x"},
        {"usage-page": "-1"},
        {"usage-sort": "account__user"},
        {"usage-per_page": "-5"},
        {"purchases-per_page": "0"},
        {"usage-sort": ["minutes", "-tutor", "nonsense"]},
    ],
)
def test_bad_table_parameters_still_show_the_page(student_client, student, query):
    credit(student, 600)
    use(student, 60)

    response = student_client.get(URL, query)

    assert response.status_code == 200
    assert "Mathematics" in response.content.decode()


def test_the_page_size_is_not_the_query_strings_to_choose(student_client, student):
    credit(student, 6000, bought_days_ago=30)
    for day in range(25):
        use(student, 30, days_ago=day + 1)

    text = student_client.get(URL, {"usage-per_page": "100000"}).content.decode()

    assert text.count('data-label="Duration"') == 10
    assert "Page 1 of 3" in text


def test_paging_through_equal_values_never_repeats_or_skips_a_session(student_client, student):
    credit(student, 6000, bought_days_ago=30)
    for day in range(25):
        use(student, 60, days_ago=day + 1, subject=f"Topic {day:02d}")

    seen = []
    for page in (1, 2, 3):
        text = student_client.get(URL, {"usage-sort": "minutes", "usage-page": page}).content.decode()
        seen += re.findall(r"Topic \d\d", text)

    assert sorted(seen) == [f"Topic {day:02d}" for day in range(25)]


def test_an_htmx_table_request_returns_only_that_table(student_client, student):
    credit(student, 600)
    use(student, 60, subject="Chemistry")

    response = student_client.get(
        URL, {"usage-sort": "minutes"}, headers={"HX-Request": "true", "HX-Target": "usage-table"}
    )

    text = response.content.decode()
    assert response.status_code == 200
    assert text.lstrip().startswith('<div id="usage-table"')
    assert "Chemistry" in text
    assert "<html" not in text and "balance-figure" not in text
    assert "HX-Request" in response["Vary"]
    # The purchase table comes along out-of-band, its links carrying the new usage sort.
    purchases = text[text.index('<div id="purchase-table"') :]
    assert 'hx-swap-oob="true"' in purchases.split(">")[0]
    assert "usage-sort=minutes" in purchases


def test_an_htmx_request_for_an_unknown_fragment_gets_the_whole_page(student_client, student):
    response = student_client.get(URL, headers={"HX-Request": "true", "HX-Target": "nonsense"})
    assert "<html" in response.content.decode()


def test_purchase_history_lists_every_lot_bought(student_client, student):
    credit(student, 600, name="Standard", price_cents=15000)
    credit(student, 300, name="Starter", price_cents=8000, bought_days_ago=100, days_valid=60)

    text = student_client.get(URL).content.decode()

    assert "€150.00" in text and "€80.00" in text


def test_it_refuses_post(student_client):
    assert student_client.post(URL).status_code == 405


def test_staff_are_sent_to_the_console(client, staff_user):
    client.force_login(staff_user)
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == reverse("console:index")


def _dashboard_queries(client, account, sessions, lots, **headers):
    plan = Plan.objects.get_or_create(name="Standard", minutes=600, price_cents=15000, validity_days=90)[0]
    for n in range(lots):
        credit(account, sessions * 60 + 600, days_valid=365, bought_days_ago=n, plan=plan)
    Usage.objects.bulk_create(
        Usage(account=account, minutes=60, occurred_at=timezone.now() - timedelta(hours=n), tutor="T", subject="S")
        for n in range(sessions)
    )
    PaymentMethod.objects.create(
        account=account, stripe_payment_method_id=f"pm_{account.pk}", brand="visa", last4="4242",
        exp_month=12, exp_year=2034, is_default=True,
    )  # fmt: skip
    client.force_login(account.user)
    client.get(URL)  # warm the session and any first-use lookups
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL, {"usage-page": 2}, headers=headers)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.django_db
def test_the_dashboard_query_count_does_not_grow_with_history(client):
    short = _dashboard_queries(client, make_student(), sessions=10, lots=1)
    long = _dashboard_queries(client, make_student(), sessions=2000, lots=40)

    assert short == long
    # + the subscription plans on sale and the live subscription, the purchase history's payments
    # (their refunds and disputes summed in the same query) and its lots no payment made.
    assert long <= 12, long


@pytest.mark.django_db
def test_a_table_swap_costs_no_more_queries_than_the_page(client):
    short = _dashboard_queries(client, make_student(), sessions=10, lots=1, HX_Request="true", HX_Target="usage-table")
    long = _dashboard_queries(client, make_student(), sessions=500, lots=20, HX_Request="true", HX_Target="usage-table")

    assert short == long <= 8


def test_a_button_fragment_skips_the_history_tables(student_client, student, django_assert_max_num_queries):
    credit(student, 600)
    use(student, 60, subject="Chemistry")
    student_client.get(URL)

    with django_assert_max_num_queries(6):  # session, user, account, lots, cards, plans
        response = student_client.get(URL, headers={"HX-Request": "true", "HX-Target": "balance"})

    text = response.content.decode()
    assert text.lstrip().startswith('<section id="balance"') and "Chemistry" not in text


def test_a_long_history_shows_only_the_latest_expired_packages_as_cards(student_client, student):
    plan = Plan.objects.create(name="Standard", minutes=600, price_cents=15000, validity_days=30)
    for months_ago in range(1, 21):
        credit(student, 60, days_valid=30, bought_days_ago=31 * months_ago, plan=plan)
    credit(student, 600, plan=plan)
    PaymentMethod.objects.create(
        account=student,
        stripe_payment_method_id="pm_1",
        brand="visa",
        last4="4242",
        exp_month=1,
        exp_year=2031,
        is_default=True,
    )

    html = student_client.get(URL).content.decode()

    assert "Expired packages (20)" in html
    assert html.count('class="lot-card is-expired"') == 6
    assert "The older ones are listed under Purchases below." in html
    assert html.count("Renew 10 h") == 1  # the active package renews; expired ones are bought anew below
