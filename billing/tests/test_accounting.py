"""The accounting exports (billing.accounting): each month's money and hours, as the console's overview
and the ledger say them. A sale, a refund, a lost dispute, a session and an expiry each move their
own figure in their own month; the hours of a month always add up (opening + movements =
outstanding = the ledger's sum before the month's end = the accounts' balances when that end is
now); the exports' rows add up to the summary's figures; and a period is whole days of the school's
time zone, at most two years."""

import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db.models import Sum

from billing import accounting, ledger, samples
from billing.accounting import (
    MOVEMENT_COLUMNS,
    AccountingPeriodInvalid,
    ExportKind,
    accounting_month,
    accounting_period,
    accounting_period_default,
    accounting_rows,
    accounting_summary,
    deferred_cents,
)
from billing.disputes.holds import dispute_record
from billing.models import AuditEntry, LedgerEntry, Payment
from billing.refunds import refund_issue
from billing.reports import console_overview
from billing.selectors import balance_summary
from billing.tests.builders import credit, make_paid_payment, make_plan, make_staff, make_student, use

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
MARCH, APRIL = accounting_month(date(2026, 3, 1)), accounting_month(date(2026, 4, 1))


@pytest.fixture(autouse=True)
def school_in_berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    settings.PORTAL_CURRENCY = "EUR"


def on(day, month=3, hour=10):
    return datetime(2026, month, day, hour, 0, tzinfo=BERLIN)


@pytest.fixture
def spring(localstripe):
    """March and April 2026, by real charges on the stand-in Stripe and the ledger's own functions:

    5 Mar  a 10 h package sold for 150.00 (lot A)
    10 Mar a 2 h session (from lot A)
    20 Mar 50.00 refunded with 200 minutes of lot A
    25 Mar a second 10 h package for 150.00 (lot B)
    28 Mar a 10 h package for 90.00 valid 10 days (lot C, expires 7 Apr)
    2 Apr  lot B's payment lost in a dispute (its 600 minutes held for good)
    3 Apr  a 1 h session (from lot C, the soonest to expire)
    7 Apr  lot C's other 540 minutes expire (booked by the expiry job the day after)
    """
    account = make_student("spring@example.com")
    standard = make_plan("Standard", minutes=600, price_cents=15000, validity_days=90)
    short = make_plan("Short", minutes=600, price_cents=9000, validity_days=10)
    staff = make_staff("finance@example.com")
    with time_machine.travel(on(5)) as clock:
        first = make_paid_payment(localstripe, account=account, plan=standard)
        clock.move_to(on(10))
        use(account, 120)
        clock.move_to(on(20))
        refund = refund_issue(payment=first, amount_cents=5000, minutes=200, reason="Unhappy", actor=staff)
        clock.move_to(on(25))
        second = make_paid_payment(localstripe, account=account, plan=standard)
        clock.move_to(on(28))
        third = make_paid_payment(localstripe, account=account, plan=short)
        clock.move_to(on(2, month=4))
        lost = samples.dispute(second, status="lost", withdrawn=True)
        dispute_record(payment=second, dispute_object=lost, event_type="charge.dispute.closed")
        clock.move_to(on(3, month=4))
        use(account, 60)
        clock.move_to(on(8, month=4))
        ledger.lots_expire_due()
    return {"account": account, "payments": (first, second, third), "refund": refund}


def test_each_event_moves_its_own_figure_in_its_own_month(spring):
    march, april = accounting_summary(
        period=accounting_period(first_day=date(2026, 3, 1), last_day=date(2026, 4, 30))
    ).months

    assert (march.gross_sales_cents, march.refunds_cents, march.disputes_lost_cents, march.net_cents) == (
        39000,
        5000,
        0,
        34000,
    )
    assert (march.opening_minutes, march.sold_minutes, march.used_minutes, march.refunded_minutes) == (
        0,
        1800,
        120,
        200,
    )
    assert (march.expired_minutes, march.disputed_minutes, march.outstanding_minutes) == (0, 0, 1480)
    # Lot A: 280 of 600 minutes left at 150.00 = 70.00; lot B untouched 150.00; lot C untouched 90.00.
    assert march.deferred_cents == 7000 + 15000 + 9000

    assert (april.gross_sales_cents, april.refunds_cents, april.disputes_lost_cents, april.net_cents) == (
        0,
        0,
        15000,
        -15000,
    )
    assert (april.opening_minutes, april.used_minutes, april.expired_minutes, april.disputed_minutes) == (
        1480,
        60,
        540,
        600,
    )
    assert (april.outstanding_minutes, april.deferred_cents) == (280, 7000)


def test_the_whole_period_adds_its_months_up(spring):
    summary = accounting_summary(period=accounting_period(first_day=date(2026, 3, 1), last_day=date(2026, 4, 30)))

    total = summary.total

    assert (total.start, total.last_day) == (date(2026, 3, 1), date(2026, 4, 30))
    assert (total.gross_sales_cents, total.refunds_cents, total.disputes_lost_cents) == (39000, 5000, 15000)
    assert (total.opening_minutes, total.outstanding_minutes, total.deferred_cents) == (0, 280, 7000)
    assert total.used_minutes == 180


def test_a_month_alone_opens_where_the_month_before_closed(spring):
    (march,) = accounting_summary(period=MARCH).months
    (april,) = accounting_summary(period=APRIL).months

    assert april.opening_minutes == march.outstanding_minutes == 1480


@pytest.mark.parametrize(
    ("now", "sales", "refunds"),
    [
        (on(10, month=4, hour=15), 24000, 5000),  # 12 Mar - 10 Apr: 25 and 28 March, the refund of 20 March
        (on(25, month=4, hour=15), 9000, 0),  # 27 Mar - 25 Apr: 28 March
    ],
)
def test_revenue_and_refunds_are_the_overviews_for_the_same_window(spring, now, sales, refunds):
    with time_machine.travel(now):
        overview = console_overview(now=now)
        # The overview's last 30 days: from midnight 29 days before today, to now (nothing is later).
        window = accounting_period(first_day=overview.since, last_day=overview.today)
        total = accounting_summary(period=window).total

    assert overview.revenue_30d_cents == total.gross_sales_cents == sales
    assert overview.refunds_30d_cents == total.refunds_cents == refunds


def test_the_months_hours_add_up_to_the_ledger_and_to_the_balances_now(localstripe):
    """Every kind of ledger movement in one month, the current one: its columns add up to what
    stands at its end, which is the ledger's sum and every account's balance."""
    staff = make_staff("finance@example.com")
    ana, ben = make_student("ana@example.com"), make_student("ben@example.com")
    with time_machine.travel(on(2, month=5)) as clock:
        sold = credit(ana, 600, days_valid=3)
        granted = ledger.lot_grant(
            account=ben, name="Goodwill", minutes=120, expires_at=on(30, month=5), reason="Sorry", actor=staff
        )
        session = use(ana, 90)
        ledger.usage_reverse(usage=session, reason="Recorded twice", actor=staff)
        use(ana, 45)
        use(ben, 30)
        clock.move_to(on(6, month=5))
        ledger.lots_expire_due()
        ledger.lot_reopen(lot=sold, expires_at=on(20, month=5), reason="Ill", actor=staff)
        ledger.lot_adjust(lot=granted, minutes=-15, reason="Typo", actor=staff)
        ledger.lot_adjust(lot=sold, minutes=30, reason="Make-up", actor=staff)
        ledger.lot_hold(lot=sold, minutes=100, reason="Dispute dp_1")
        ledger.lot_release(lot=sold, minutes=40, reason="Dispute dp_1")
        ledger.lot_reverse(lot=sold, minutes=50, reason="Refund")
        clock.move_to(on(10, month=5))
        (may,) = accounting_summary(period=accounting_month(date(2026, 5, 1))).months
        balances = sum(balance_summary(account=account).available_minutes for account in (ana, ben))

    assert set(LedgerEntry.Kind) == set(MOVEMENT_COLUMNS), "every kind of movement counts in the summary"
    assert LedgerEntry.objects.values("kind").distinct().count() == len(LedgerEntry.Kind)
    moved = (
        may.opening_minutes
        + may.sold_minutes
        + may.granted_minutes
        - may.used_minutes
        - may.expired_minutes
        - may.refunded_minutes
        - may.disputed_minutes
        + may.adjusted_minutes
    )
    ledger_sum = LedgerEntry.objects.filter(occurred_at__lt=datetime(2026, 6, 1, tzinfo=BERLIN)).aggregate(
        total=Sum("minutes")
    )["total"]
    assert moved == may.outstanding_minutes == ledger_sum == balances == 600 + 120 - 45 - 30 - 15 + 30 - 60 - 50
    assert (may.used_minutes, may.expired_minutes, may.disputed_minutes) == (75, 0, 60)


def test_an_expiry_counts_in_the_month_the_lot_expired_not_when_the_job_booked_it():
    account = make_student()
    with time_machine.travel(on(25)) as clock:
        credit(account, 300, days_valid=6)  # expires 31 March, 10:00
        clock.move_to(on(3, month=4))
        ledger.lots_expire_due()

    (march,) = accounting_summary(period=MARCH).months
    assert (march.expired_minutes, march.outstanding_minutes, march.deferred_cents) == (300, 0, 0)


def test_months_are_the_school_time_zones():
    """Half past midnight on 1 April in Berlin is still 31 March in UTC: it belongs to April."""
    account = make_student()
    with time_machine.travel(datetime(2026, 4, 1, 0, 30, tzinfo=BERLIN)):
        credit(account, 60, price_cents=1500)

    (march,) = accounting_summary(period=MARCH).months
    (april,) = accounting_summary(period=APRIL).months
    assert (march.sold_minutes, april.sold_minutes) == (0, 60)


def test_a_period_that_cuts_months_shows_each_month_cut_to_it(spring):
    period = accounting_period(first_day=date(2026, 3, 21), last_day=date(2026, 4, 2))

    march, april = accounting_summary(period=period).months

    assert (march.start, march.last_day, april.start, april.last_day) == (
        date(2026, 3, 21),
        date(2026, 3, 31),
        date(2026, 4, 1),
        date(2026, 4, 2),
    )
    assert (march.gross_sales_cents, march.refunds_cents, april.disputes_lost_cents) == (24000, 0, 15000)
    assert march.opening_minutes == 600 - 120 - 200


# Deferred revenue: each lot at its own price per minute, rounded half up once.


@pytest.mark.parametrize(
    ("outstanding", "price", "bought", "worth"),
    [
        (600, 15000, 600, 15000),  # untouched: exactly its price
        (0, 15000, 600, 0),
        (1, 1000, 3, 333),  # 333.33 cents
        (2, 1000, 3, 667),  # 666.67 cents
        (1, 1, 2, 1),  # half a cent rounds up
        (50, 0, 120, 0),  # granted hours are worth nothing
    ],
)
def test_a_lots_deferred_revenue_is_its_minutes_at_its_price_rounded_half_up(outstanding, price, bought, worth):
    assert deferred_cents(minutes_outstanding=outstanding, price_cents=price, minutes_purchased=bought) == worth


def test_the_deferred_revenue_export_adds_up_to_the_summary(spring):
    header, *lots = list(accounting_rows(kind=ExportKind.DEFERRED, period=MARCH))
    (march,) = accounting_summary(period=MARCH).months

    column = dict(zip(header, range(len(header)), strict=True))
    assert sum(row[column["minutes_outstanding"]] for row in lots) == march.outstanding_minutes
    assert sum(row[column["deferred_revenue"]] for row in lots) * 100 == march.deferred_cents
    assert [row[column["deferred_revenue"]] for row in lots] == [70, 150, 90]


def test_each_months_deferred_revenue_is_that_of_its_lots_at_its_end(spring):
    """The summary walks its months from the period's start; the deferred revenue export reads the
    lots at one month's end on its own: the two agree month after month."""
    spring_summary = accounting_summary(
        period=accounting_period(first_day=date(2026, 3, 1), last_day=date(2026, 4, 30))
    )

    for month, alone in zip(spring_summary.months, (MARCH, APRIL), strict=True):
        header, *lots = list(accounting_rows(kind=ExportKind.DEFERRED, period=alone))
        column = header.index("deferred_revenue")
        assert sum(row[column] for row in lots) * 100 == month.deferred_cents
    assert [month.deferred_cents for month in spring_summary.months] != [0, 0]


def test_a_long_summary_costs_the_queries_of_a_month(spring, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):
        accounting_summary(period=MARCH)
    with django_assert_max_num_queries(5):
        accounting_summary(period=accounting_period(first_day=date(2024, 5, 1), last_day=date(2026, 4, 30)))


# The rows.


def rows_of(kind, period):
    """The export as a spreadsheet reads it back: CSV text, then dicts by column."""
    text = io.StringIO()
    csv.writer(text).writerows(accounting_rows(kind=kind, period=period))
    return list(csv.DictReader(io.StringIO(text.getvalue())))


def test_the_payments_export_lists_the_sales_and_adds_up_to_gross_sales(spring):
    first, second, third = spring["payments"]
    rows = rows_of(ExportKind.PAYMENTS, MARCH)

    assert [row["payment_id"] for row in rows] == [str(first.pk), str(second.pk), str(third.pk)]
    assert rows[0] | {"email": "spring@example.com"} == rows[0]
    assert (rows[0]["amount"], rows[0]["currency"], rows[0]["created_at"]) == (
        "150.00",
        "EUR",
        "2026-03-05T10:00:00+01:00",
    )
    assert rows[0]["receipt"] == first.receipt.number and rows[0]["payment_intent"] == first.stripe_payment_intent_id
    assert rows[2]["created_at"] == "2026-03-28T10:00:00+01:00"  # summer time starts on 29 March
    assert (
        sum(int(row["amount"].replace(".", "")) for row in rows)
        == accounting_summary(period=MARCH).total.gross_sales_cents
    )


def test_the_refunds_and_credit_notes_exports_name_what_matches(spring):
    refund, first = spring["refund"], spring["payments"][0]

    (row,) = rows_of(ExportKind.REFUNDS, MARCH)
    (note,) = rows_of(ExportKind.CREDIT_NOTES, MARCH)

    assert (row["refund_id"], row["amount"], row["minutes_reversed"], row["status"]) == (
        str(refund.pk),
        "50.00",
        "200",
        "succeeded",
    )
    assert row["credit_note"] == note["number"] == refund.credit_note.number
    assert (note["kind"], note["amount"], note["corrects"], note["stripe_refund"]) == (
        "credit_note",
        "50.00",
        first.receipt.number,
        refund.stripe_refund_id,
    )


def test_the_receipts_export_is_the_series_in_order_as_issued(spring):
    rows = rows_of(ExportKind.RECEIPTS, MARCH)

    assert [row["number"] for row in rows] == ["2026-000001", "2026-000002", "2026-000003"]
    assert [row["amount"] for row in rows] == ["150.00", "150.00", "90.00"]
    assert rows[0]["payment_id"] == str(spring["payments"][0].pk)


def test_the_disputes_export_lists_a_dispute_lost_in_the_month(spring):
    second = spring["payments"][1]

    (row,) = rows_of(ExportKind.DISPUTES, APRIL)

    assert (row["status"], row["amount"], row["payment_id"], row["minutes_held"]) == (
        "lost",
        "150.00",
        str(second.pk),
        "600",
    )
    assert row["closed_at"] == "2026-04-02T10:00:00+02:00"
    assert rows_of(ExportKind.DISPUTES, MARCH) == []


def test_the_ledger_export_is_every_movement_of_the_month_in_order(spring):
    rows = rows_of(ExportKind.LEDGER, MARCH)

    assert [(row["kind"], row["minutes"], row["hours"]) for row in rows] == [
        ("credit", "600", "10.00"),
        ("usage", "-120", "-2.00"),
        ("reversal", "-200", "-3.33"),
        ("credit", "600", "10.00"),
        ("credit", "600", "10.00"),
    ]
    assert rows[0]["receipt"] == spring["payments"][0].receipt.number
    assert sum(int(row["minutes"]) for row in rows) == accounting_summary(period=MARCH).months[0].outstanding_minutes


def test_the_summary_export_is_one_row_a_month(spring):
    rows = rows_of(ExportKind.SUMMARY, accounting_period(first_day=date(2026, 3, 1), last_day=date(2026, 4, 30)))

    assert [(row["month"], row["first_day"], row["last_day"]) for row in rows] == [
        ("2026-03", "2026-03-01", "2026-03-31"),
        ("2026-04", "2026-04-01", "2026-04-30"),
    ]
    assert (rows[0]["gross_sales"], rows[0]["net"], rows[0]["deferred_revenue"], rows[0]["currency"]) == (
        "390.00",
        "340.00",
        "310.00",
        "EUR",
    )
    assert (rows[1]["net"], rows[1]["outstanding_minutes"], rows[1]["outstanding_hours"]) == ("-150.00", "280", "4.67")


def test_an_export_is_audited_once_with_its_period():
    staff = make_staff("finance@example.com")

    rows = accounting.accounting_export(kind=ExportKind.LEDGER, period=MARCH, actor=staff, ip_address="203.0.113.9")

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target_type, entry.target_label, entry.actor_email, entry.ip_address) == (
        "accounting.export",
        "accounting_period",
        "2026-03",
        "finance@example.com",
        "203.0.113.9",
    )
    assert entry.after == {"export": "ledger", "from": "2026-03-01", "to": "2026-03-31"}
    assert next(iter(rows))[0] == "entry_id"


# Periods.


def test_a_period_of_two_years_is_accepted_and_a_day_more_is_refused():
    two_years = accounting_period(first_day=date(2025, 1, 1), last_day=date(2026, 12, 31))
    assert len(list(two_years.months())) == 24

    with pytest.raises(AccountingPeriodInvalid, match="^An export covers at most 2 years. Choose a shorter period.$"):
        accounting_period(first_day=date(2025, 1, 1), last_day=date(2027, 1, 1))


def test_a_period_that_ends_before_it_starts_is_refused():
    with pytest.raises(AccountingPeriodInvalid, match="^The period must end on or after the day it starts.$"):
        accounting_period(first_day=date(2026, 3, 2), last_day=date(2026, 3, 1))


@pytest.mark.parametrize("day", [date(1999, 12, 31), date(9999, 12, 1)])
def test_a_month_outside_the_portals_years_is_refused_without_overflowing(day):
    with pytest.raises(AccountingPeriodInvalid, match="^Choose dates between 1 Jan 2000 and 31 Dec 2199.$"):
        accounting_month(day)


def test_a_period_is_named_by_its_months_or_its_days():
    assert MARCH.name == "2026-03"
    assert accounting_period(first_day=date(2026, 1, 1), last_day=date(2026, 3, 31)).name == "2026-01-to-2026-03"
    assert accounting_period(first_day=date(2026, 3, 3), last_day=date(2026, 4, 2)).name == "2026-03-03-to-2026-04-02"


def test_the_default_period_is_last_month_in_the_school_time_zone():
    # 1 April 00:30 in Berlin is still 31 March in UTC: last month is March.
    with time_machine.travel(datetime(2026, 4, 1, 0, 30, tzinfo=BERLIN)):
        assert accounting_period_default() == MARCH
    assert accounting_period_default(today=date(2026, 1, 15)) == accounting_month(date(2025, 12, 1))


def test_payments_left_for_review_are_not_sales(spring):
    first = spring["payments"][0]
    Payment.objects.filter(pk=first.pk).update(status=Payment.Status.RESOLVED)

    assert [row["payment_id"] for row in rows_of(ExportKind.PAYMENTS, MARCH)] == [
        str(payment.pk) for payment in spring["payments"][1:]
    ]
    assert accounting_summary(period=MARCH).total.gross_sales_cents == 24000
