"""The console's tables cost the same number of queries however many rows the database holds."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import samples
from billing.audit import audit_record
from billing.events import webhook_event_ingest
from billing.models import FraudFlag, Payment, PaymentMethod, Plan
from billing.tests.builders import credit, make_student, use

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)


def grow(count, finance_user):
    """`count` students, each with a card, a payment (every third one failed), a session, a fraud
    flag, a Stripe event and an audit entry: our own rows, as the console reads them."""
    plan = Plan.objects.first() or Plan.objects.create(
        name="Standard", minutes=600, price_cents=15000, validity_days=90
    )
    for _ in range(count):
        n = next(_ids)
        account = make_student(f"grow{n}@example.com")
        card = PaymentMethod.objects.create(
            account=account, stripe_payment_method_id=f"pm_{n}", brand="visa", last4="4242", exp_month=1, exp_year=2031
        )
        lot = credit(account, 600, bought_days_ago=2)
        use(account, 60)
        failed = n % 3 == 0
        payment = Payment.objects.create(
            account=account,
            plan=plan,
            kind="purchase",
            amount_cents=15000,
            currency="EUR",
            minutes=600,
            validity_days=90,
            payment_method=card,
            status="failed" if failed else "succeeded",
            failure_code="card_declined" if failed else "",
            idempotency_key=f"key-{n}",
            stripe_payment_intent_id=f"pi_{n}",
            lot=None if failed else lot,
        )
        FraudFlag.objects.create(
            account=account,
            payment=payment,
            rule="attempts",
            fraud_type="rule",
            evidence={"n": n, "payment_ids": [n]},
            status="cleared" if n % 2 else "open",
            resolved_by=finance_user if n % 2 else None,
        )
        webhook_event_ingest(
            event=samples.event("payment_intent.succeeded", {"id": f"pi_{n}", "object": "payment_intent"})
        )
        audit_record(actor=finance_user, action="account.block", target=account, reason="test")
    return account


def queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    "url",
    [
        reverse("console:index"),
        reverse("console:payments"),
        reverse("console:payments") + "?status=succeeded&amount_min=100",
        reverse("console:refunds"),
        reverse("console:disputes"),
        reverse("console:flags"),
        reverse("console:flags") + "?status=cleared",
        reverse("console:webhooks"),
        reverse("console:webhooks") + "?status=pending",
        reverse("console:students"),
        reverse("console:audit"),
    ],
)
def test_a_table_page_does_not_query_per_row(finance_client, finance_user, url):
    grow(3, finance_user)
    few = queries(finance_client, url)
    grow(30, finance_user)
    assert queries(finance_client, url) == few


def test_the_student_page_does_not_query_per_row(finance_client, finance_user):
    account = grow(1, finance_user)
    url = reverse("console:student", args=[account.pk])
    few = queries(finance_client, url)
    for _ in range(15):
        use(account, 10)
        audit_record(actor=finance_user, action="account.block", target=account, reason="more")
    assert queries(finance_client, url) == few


def test_filtering_by_status_needs_no_distinct(finance_client, finance_user):
    grow(3, finance_user)
    with CaptureQueriesContext(connection) as captured:
        finance_client.get(reverse("console:payments"), {"status": ["succeeded", "failed"]})
        finance_client.get(reverse("console:webhooks"), {"status": ["failed"]})
    assert not [query["sql"] for query in captured if "DISTINCT" in query["sql"].upper()]
