"""The console overview's payment figures (billing.reports.console_overview) are exactly what a
plain count of the payments gives, for any history and in any time zone: revenue today and over
the last 30 days, successes and failures, the top decline codes, the day-by-day revenue, and the
payments in flight or waiting for review."""

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from itertools import count

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Payment
from billing.reports import console_overview
from billing.tests.builders import credit, make_plan, make_student

pytestmark = pytest.mark.django_db
# Time zones where a day is not 24 hours or midnight moves (Santiago's DST changes at midnight).
ZONES = ["Europe/Lisbon", "America/Santiago", "Asia/Kolkata", "Pacific/Auckland"]
CODES = ["card_declined", "insufficient_funds", "expired_card", "incorrect_cvc", "processing_error", "do_not_honor", ""]
_keys = count(1)

payments = st.lists(
    st.tuples(
        st.sampled_from([status for status, _label in Payment.Status.choices]),
        st.integers(1, 60_000),  # amount in cents
        st.integers(-45 * 24 * 60, 2 * 24 * 60),  # minutes from now: the last 45 days and a little after
        st.sampled_from(CODES),
    ),
    max_size=40,
)


@pytest.fixture
def account_and_plan():
    return make_student("overview@example.com"), make_plan()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=payments, zone=st.sampled_from(ZONES))
def test_the_overview_counts_what_the_payments_say(account_and_plan, history, zone):
    account, plan = account_and_plan
    now = datetime(2026, 4, 5, 10, 30, tzinfo=UTC)  # the day Santiago and Auckland leave summer time
    with transaction.atomic(), timezone.override(zone):
        made = [add_payment(account, plan, *row, now=now) for row in history]
        assert figures(console_overview(now=now)) == expected(made, now=now)
        transaction.set_rollback(True)  # the next example starts from no payments


def add_payment(account, plan, status, amount_cents, minutes, code, *, now):
    payment = Payment.objects.create(
        account=account,
        plan=plan,
        kind="purchase",
        amount_cents=amount_cents,
        currency="EUR",
        minutes=60,
        validity_days=90,
        status=status,
        failure_code=code if status == Payment.Status.FAILED else "",
        idempotency_key=f"overview-{next(_keys)}",
        lot=credit(account, 60) if status == Payment.Status.SUCCEEDED else None,
    )
    created_at = now + timedelta(minutes=minutes)
    Payment.objects.filter(pk=payment.pk).update(created_at=created_at)
    payment.created_at = created_at
    return payment


def figures(overview):
    return {
        "revenue_today": overview.revenue_today_cents,
        "revenue_30d": overview.revenue_30d_cents,
        "succeeded": overview.succeeded_30d,
        "failed": overview.failed_30d,
        "declines": [(decline["failure_code"], decline["count"]) for decline in overview.declines],
        "in_flight": overview.in_flight,
        "needs_review": overview.needs_review,
        "daily": overview.daily_revenue,
    }


def expected(made, *, now):
    """The figures by hand, in the active time zone: the last 30 days start at midnight 29 days
    before today; revenue counts succeeded payments."""
    today = timezone.localdate(now)
    start_of_today = timezone.make_aware(datetime.combine(today, time.min))
    since = start_of_today - timedelta(days=29)
    recent = [payment for payment in made if payment.created_at >= since]
    succeeded = [payment for payment in recent if payment.status == Payment.Status.SUCCEEDED]
    failed = [payment for payment in recent if payment.status == Payment.Status.FAILED]
    codes = Counter(payment.failure_code for payment in failed)
    by_day = Counter()
    for payment in succeeded:
        by_day[timezone.localdate(payment.created_at)] += payment.amount_cents
    days = [today - timedelta(days=offset) for offset in range(29, -1, -1)]
    return {
        "revenue_today": sum(payment.amount_cents for payment in succeeded if payment.created_at >= start_of_today),
        "revenue_30d": sum(payment.amount_cents for payment in succeeded),
        "succeeded": len(succeeded),
        "failed": len(failed),
        "declines": sorted(codes.items(), key=lambda item: (-item[1], item[0]))[:6],
        "in_flight": sum(payment.status in Payment.IN_FLIGHT for payment in made),
        "needs_review": sum(payment.status == Payment.Status.NEEDS_REVIEW for payment in made),
        "daily": [(day, by_day.get(day, 0)) for day in days],
    }
