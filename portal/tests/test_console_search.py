"""Searching the console's lists by student: disputes, fraud flags and refunds by the student's email
or name, the students list by name too. A search that cannot be run says so; it never fails."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import Dispute, FraudFlag, Refund
from billing.tests.builders import credit, make_student, payment_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def students(db):
    """Two students with a paid payment each, each payment disputed, refunded and flagged."""
    ana = make_student("ana.lopez@example.com", first_name="Ana", last_name="López Vidal")
    ben = make_student("b.okafor@example.com", first_name="Benedict", last_name="Okafor")
    for account in (ana, ben):
        payment = paid(account)
        Dispute.objects.create(
            payment=payment,
            stripe_dispute_id=f"dp_search_{payment.pk}",
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            status=Dispute.Status.NEEDS_RESPONSE,
            evidence_due_by=timezone.now() + timedelta(days=7),
        )
        Refund.objects.create(
            payment=payment,
            amount_cents=1000,
            currency=payment.currency,
            status=Refund.Status.SUCCEEDED,
            idempotency_key=f"refund-search-{payment.pk}",
        )
        FraudFlag.objects.create(account=account, payment=payment, rule=FraudFlag.Rule.ATTEMPTS, fraud_type="attempts")
    return ana, ben


def paid(account):
    return payment_row(account, lot=credit(account, 600))


LISTS = ["console:disputes", "console:flags", "console:refunds", "console:students"]


def found(client, route, query):
    """The students' emails in the list's table, for a search."""
    response = client.get(reverse(route), {"q": query})
    assert response.status_code == 200
    text = response.content.decode()
    return {email for email in ("ana.lopez@example.com", "b.okafor@example.com") if email in text}


@pytest.mark.parametrize("route", LISTS)
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ana.lopez@", {"ana.lopez@example.com"}),  # part of the email
        ("OKAFOR", {"b.okafor@example.com"}),  # the last name, any case
        ("benedict", {"b.okafor@example.com"}),  # the first name
        ("ana vidal", {"ana.lopez@example.com"}),  # first and (part of the) last name
        ("lópez", {"ana.lopez@example.com"}),  # accents as typed
        ("ana okafor", set()),  # every word must match: no one is both
        ("example.com", {"ana.lopez@example.com", "b.okafor@example.com"}),
        ("  ", {"ana.lopez@example.com", "b.okafor@example.com"}),  # blank: no search
    ],
)
def test_a_list_is_searched_by_the_students_email_or_name(support_client, students, route, query, expected):
    assert found(support_client, route, query) == expected


def test_the_flag_search_keeps_to_open_flags_unless_a_status_is_chosen(support_client, students):
    ana, _ = students
    FraudFlag.objects.filter(account=ana).update(status=FraudFlag.Status.CLEARED)

    assert found(support_client, "console:flags", "ana") == set()
    response = support_client.get(reverse("console:flags"), {"q": "ana", "status": ""})
    assert "ana.lopez@example.com" in response.content.decode()


def test_the_students_list_still_finds_a_stripe_customer_id(support_client, students):
    ana, _ = students
    ana.stripe_customer_id = "cus_Search123"
    ana.save()

    assert found(support_client, "console:students", "cus_Search123") == {"ana.lopez@example.com"}


def test_a_search_swaps_only_the_table_under_htmx(support_client, students):
    response = support_client.get(
        reverse("console:disputes"), {"q": "okafor"}, headers={"HX-Request": "true", "HX-Target": "console-table"}
    )

    text = response.content.decode()
    assert "<html" not in text and "b.okafor@example.com" in text and "ana.lopez@example.com" not in text


@pytest.mark.parametrize("route", LISTS)
@pytest.mark.parametrize("query", ["a" * 255, "ana\x00", "%", "_", "' OR 1=1 --", "😀" * 10])
def test_search_input_that_cannot_match_never_fails(support_client, students, route, query):
    response = support_client.get(reverse(route), {"q": query})

    assert response.status_code == 200


@pytest.mark.parametrize("route", LISTS)
def test_a_search_too_long_or_with_a_nul_says_why(support_client, students, route):
    for query in ("a" * 255, "ana\x00"):
        text = support_client.get(reverse(route), {"q": query}).content.decode()
        assert "That filter is left out." in text


def test_the_search_is_labelled_for_what_it_takes(support_client):
    for route in ("console:disputes", "console:flags", "console:refunds"):
        assert 'placeholder="Student&#x27;s email or name"' in support_client.get(reverse(route)).content.decode()
    assert "Email, name or Stripe customer id" in support_client.get(reverse("console:students")).content.decode()
