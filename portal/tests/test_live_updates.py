"""The dashboard's live updates: its poller sends the ETag of what the page shows; an unchanged poll is
answered 304 from the account's version in two queries, a change made elsewhere makes the page's
parts fetch themselves afresh."""

import html
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.tests.builders import credit, make_staff, make_student, use
from portal.tests.htmx import client_events

LIVE = reverse("student:live")
POLL = {"HX-Request": "true"}


def etag_on(page):
    """The ETag the page's poller sends (its hx-headers)."""
    headers = re.search(r'id="live"[^>]*hx-headers="([^"]*)"', page.content.decode()).group(1)
    return json.loads(html.unescape(headers))["If-None-Match"]


def poll(client, etag, **query):
    return client.get(LIVE, query, headers=POLL | {"If-None-Match": etag})


@pytest.fixture
def shown(student_client, student):
    credit(student, 600)
    return etag_on(student_client.get("/"))


def test_an_unchanged_poll_is_not_modified_in_two_queries(student_client, shown):
    with CaptureQueriesContext(connection) as queries:
        response = poll(student_client, shown)

    assert response.status_code == 304 and response.content == b""
    assert len(queries) <= 2, [query["sql"] for query in queries]  # the session; the user with the account


def test_a_session_recorded_elsewhere_refreshes_the_page(student_client, student, shown):
    use(student, 45)

    response = poll(student_client, shown)

    assert response.status_code == 200
    assert "balanceChanged" in client_events(response)
    assert etag_on(response) == response["ETag"] != shown
    assert poll(student_client, response["ETag"]).status_code == 304


def test_the_page_takes_its_new_etag_after_its_own_action_without_refreshing_again(student_client, student, shown):
    use(student, 45)

    response = poll(student_client, shown, sync="1")

    assert response.status_code == 200 and "balanceChanged" not in client_events(response)
    assert poll(student_client, etag_on(response)).status_code == 304


def test_another_students_change_is_not_a_change(student_client, shown):
    other = make_student()
    credit(other, 300)

    assert poll(student_client, shown).status_code == 304


def test_a_new_language_is_a_change(student_client, student, shown):
    student.user.language = "pt-pt"
    student.user.save()

    assert poll(student_client, shown).status_code == 200


def test_a_forged_etag_gets_the_current_one(student_client, shown):
    response = poll(student_client, '"forged", W/"x", *nonsense')

    assert response.status_code == 200 and etag_on(response) == shown


def test_the_poller_on_the_page_polls_every_few_seconds_while_visible(student_client, settings):
    settings.LIVE_POLL_SECONDS = 7
    page = student_client.get("/").content.decode()

    assert re.search(r'id="live"[^>]*data-live[^>]*hx-trigger="every 7s, live"', page)


def test_signed_out_the_poll_loads_the_sign_in_page(client):
    response = client.get(LIVE, headers=POLL)

    assert response.status_code == 200 and response["HX-Redirect"].startswith(reverse("account_login"))


def test_staff_have_no_dashboard_to_poll(client, db):
    client.force_login(make_staff())

    assert client.get(LIVE, headers=POLL).status_code == 404


def test_only_get(student_client):
    assert student_client.post(LIVE).status_code == 405
