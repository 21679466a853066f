"""Statements of account: read from the ledger, they always reconcile (opening + lines = closing,
ranges chain, a range ending today closes on the account's balance), whatever history is behind
them; a session is one line however many lots it drew on; the PDF and CSV say the same; the
monthly email goes once to those who asked for it."""

import csv
import io
import secrets
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db.models import Sum
from django.utils import timezone, translation
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from billing import hours_actions, ledger
from billing.errors import BillingError, StatementRangeInvalid
from billing.models import LedgerEntry, Lot, Payment, Refund, StatementEmail, Subscription, Usage
from billing.statements import (
    EMAIL_ATTEMPTS_MAX,
    RANGE_BACKWARDS,
    RANGE_OUT_OF_BOUNDS,
    RANGE_TOO_LONG,
    LineKind,
    statement_build,
    statement_csv_rows,
    statement_default_range,
    statement_emails_set,
    statement_pdf,
    statement_range_check,
    statements_email_due,
)
from billing.tasks import email_monthly_statements
from billing.tests.builders import credit, make_plan, make_staff, make_student, make_subscription_plan
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db

# The student reads in a zone far from the site's (Europe/Berlin): a statement's days are theirs.
AUCKLAND = ZoneInfo("Pacific/Auckland")
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 10, 9, 0, tzinfo=AUCKLAND)


def entries_sum(account, **filters):
    return LedgerEntry.objects.filter(account=account, **filters).aggregate(total=Sum("minutes"))["total"] or 0


def midnight(day, zone=AUCKLAND):
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def assert_reconciles(statement):
    running = statement.opening_minutes
    for line in statement.lines:
        assert (line.minutes_in == 0) != (line.minutes_out == 0), line
        running += line.minutes
        assert line.balance_minutes == running, line
    assert statement.closing_minutes == running
    assert statement.opening_minutes + statement.minutes_in - statement.minutes_out == statement.closing_minutes


class StatementMachine(RuleBasedStateMachine):
    """Random histories through the ledger (purchases, grants, sessions late and on time, voids,
    expiries with time moving on, reopened expiries, adjustments, refunds' reversals, dispute holds
    and releases), each checked against statements cut at random days."""

    def __init__(self):
        super().__init__()
        self.clock = time_machine.travel(START, tick=False)
        self.traveller = self.clock.start()
        self.account = make_student(time_zone="Pacific/Auckland")
        self.staff = make_staff(f"staff-{secrets.token_hex(4)}@example.com")
        self.held = []  # (lot id, minutes) held for a dispute, not yet released
        self.first_day = START.date() - timedelta(days=12)

    def teardown(self):
        self.clock.stop()

    def lots(self):
        return sorted(Lot.objects.filter(account=self.account).values_list("pk", flat=True))

    def attempt(self, operation, **arguments):
        """A ledger operation the history may not allow now (hours short, a lot expired): refused
        operations change nothing, which is all the statement cares about."""
        try:
            return operation(**arguments)
        except BillingError:
            return None

    @rule(minutes=st.integers(1, 1200), days_valid=st.integers(1, 60), hours_ago=st.integers(0, 24 * 10))
    def purchase(self, minutes, days_valid, hours_ago):
        purchased_at = timezone.now() - timedelta(hours=hours_ago)
        ledger.lot_credit(
            account=self.account,
            name="Standard",
            minutes=minutes,
            purchased_at=purchased_at,
            expires_at=purchased_at + timedelta(days=days_valid),
        )

    @rule(minutes=st.integers(1, 600), days_valid=st.integers(1, 60))
    def grant(self, minutes, days_valid):
        ledger.lot_grant(
            account=self.account,
            name="Goodwill",
            minutes=minutes,
            expires_at=timezone.now() + timedelta(days=days_valid),
            reason="Goodwill",
            actor=self.staff,
        )

    @rule(minutes=st.integers(1, 900), hours_ago=st.integers(0, 24 * 10))
    def session(self, minutes, hours_ago):
        self.attempt(
            ledger.usage_record,
            account=self.account,
            minutes=minutes,
            occurred_at=timezone.now() - timedelta(hours=hours_ago),
            tutor="Dr. Maria Keller",
            subject="Mathematics",
        )

    @precondition(lambda self: Usage.objects.filter(account=self.account, voided_at__isnull=True).exists())
    @rule(data=st.data())
    def void(self, data):
        usages = sorted(Usage.objects.filter(account=self.account, voided_at__isnull=True).values_list("pk", flat=True))
        usage = Usage.objects.get(pk=data.draw(st.sampled_from(usages)))
        ledger.usage_reverse(usage=usage, reason="Recorded by mistake", actor=self.staff)

    @rule(hours=st.integers(1, 24 * 40))
    def time_passes(self, hours):
        self.traveller.shift(timedelta(hours=hours))

    @rule()
    def expiry_job_runs(self):
        ledger.lots_expire_due()

    @precondition(lambda self: Lot.objects.filter(account=self.account, expired_at__isnull=False).exists())
    @rule(data=st.data(), days=st.integers(1, 30))
    def reopen(self, data, days):
        expired = sorted(
            Lot.objects.filter(account=self.account, expired_at__isnull=False).values_list("pk", flat=True)
        )
        lot = Lot.objects.get(pk=data.draw(st.sampled_from(expired)))
        self.attempt(
            hours_actions.lot_extend,
            lot=lot,
            expires_at=timezone.now() + timedelta(days=days),
            reason="Illness",
            actor=self.staff,
            key=secrets.token_urlsafe(12),
        )

    @precondition(lambda self: Lot.objects.filter(account=self.account).exists())
    @rule(data=st.data(), minutes=st.integers(-600, 600).filter(bool))
    def adjust(self, data, minutes):
        lot = Lot.objects.get(pk=data.draw(st.sampled_from(self.lots())))
        self.attempt(ledger.lot_adjust, lot=lot, minutes=minutes, reason="Correction by the school")

    @precondition(lambda self: Lot.objects.filter(account=self.account).exists())
    @rule(data=st.data(), minutes=st.integers(1, 600))
    def refund_reversal(self, data, minutes):
        lot = Lot.objects.get(pk=data.draw(st.sampled_from(self.lots())))
        self.attempt(ledger.lot_reverse, lot=lot, minutes=minutes, reason="Refund re_1")

    @precondition(lambda self: Lot.objects.filter(account=self.account).exists())
    @rule(data=st.data(), minutes=st.integers(1, 600))
    def dispute_hold(self, data, minutes):
        lot_id = data.draw(st.sampled_from(self.lots()))
        if self.attempt(ledger.lot_hold, lot=Lot.objects.get(pk=lot_id), minutes=minutes, reason="Dispute dp_1"):
            self.held.append((lot_id, minutes))

    @precondition(lambda self: self.held)
    @rule()
    def dispute_release(self):
        lot_id, minutes = self.held.pop()
        self.attempt(ledger.lot_release, lot=Lot.objects.get(pk=lot_id), minutes=minutes, reason="Dispute dp_1 won")

    def today(self):
        return timezone.localdate(timezone=AUCKLAND)

    @invariant()
    def a_statement_up_to_today_closes_on_the_balance(self):
        self.account.refresh_from_db()
        statement = statement_build(account=self.account, start=self.first_day, end=self.today())

        assert_reconciles(statement)
        assert statement.opening_minutes == entries_sum(self.account, occurred_at__lt=midnight(self.first_day))
        assert statement.closing_minutes == self.account.balance_minutes
        # Every entry is in a line, and a session (or its void) is one line however many lots it touched.
        entries = LedgerEntry.objects.filter(account=self.account, occurred_at__gte=midnight(self.first_day))
        sessions = entries.filter(kind=LedgerEntry.Kind.USAGE).values("usage_id").distinct().count()
        voids = entries.filter(kind=LedgerEntry.Kind.VOID).values("usage_id").distinct().count()
        others = entries.exclude(kind__in=[LedgerEntry.Kind.USAGE, LedgerEntry.Kind.VOID]).count()
        kinds = [line.kind for line in statement.lines]
        assert kinds.count(LineKind.SESSION) == sessions
        assert kinds.count(LineKind.SESSION_VOIDED) == voids
        assert len(kinds) == sessions + voids + others

    @invariant()
    def consecutive_statements_chain(self):
        today = self.today()
        days = (today - self.first_day).days
        cut = self.first_day + timedelta(days=days // 2 + 1)
        whole = statement_build(account=self.account, start=self.first_day, end=today)
        before = statement_build(account=self.account, start=self.first_day, end=cut - timedelta(days=1))
        after = statement_build(account=self.account, start=cut, end=today)

        assert_reconciles(before)
        assert_reconciles(after)
        assert before.closing_minutes == after.opening_minutes
        assert after.opening_minutes == entries_sum(self.account, occurred_at__lt=midnight(cut))
        assert after.closing_minutes == whole.closing_minutes
        assert before.lines + after.lines == whole.lines


def test_statements_of_random_histories_reconcile_with_the_ledger():
    run_state_machine_as_test(
        StatementMachine,
        settings=settings(
            max_examples=40, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        ),
    )


@pytest.fixture
def november():
    """The clock in the middle of November 2026 (Berlin); the student reads in Berlin too."""
    with time_machine.travel(datetime(2026, 11, 14, 12, 0, tzinfo=BERLIN), tick=False) as traveller:
        yield traveller


def at(day, hour=12, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN)


def test_a_session_drawn_from_two_lots_is_one_line_and_so_is_its_void(november):
    account = make_student()
    credit(account, 60, days_valid=30, bought_days_ago=5, name="Starter")
    credit(account, 600, days_valid=90, bought_days_ago=5, name="Standard")
    usage = ledger.usage_record(
        account=account, minutes=90, occurred_at=at(13), tutor="Dr. Maria Keller", subject="Mathematics"
    )
    ledger.usage_reverse(usage=usage, reason="Recorded twice", actor=make_staff())
    assert LedgerEntry.objects.filter(usage=usage).count() == 4  # two lots drawn on, two given back

    statement = statement_build(account=account, start=date(2026, 11, 1), end=date(2026, 11, 30))

    session, voided = statement.lines[-2:]
    assert (session.kind, session.minutes_out, session.description) == (
        LineKind.SESSION,
        90,
        "Session: Mathematics with Dr. Maria Keller",
    )
    assert (voided.kind, voided.minutes_in, voided.balance_minutes) == (LineKind.SESSION_VOIDED, 90, 660)
    assert [line.kind for line in statement.lines[:2]] == [LineKind.PURCHASE, LineKind.PURCHASE]
    assert len(statement.lines) == 4


def test_each_line_says_what_it_is(november):
    account = make_student()
    staff = make_staff()
    bought = credit(account, 600, bought_days_ago=20, name="Standard")  # 25 October: before the range
    subscription_lot = credit(account, 480, bought_days_ago=10, name="Monthly 8 h: November 2026")
    subscription = Subscription.objects.create(
        account=account,
        plan=make_subscription_plan(),
        status=Subscription.Status.ACTIVE,
        idempotency_key=secrets.token_hex(8),
        stripe_subscription_id="sub_1",
        stripe_item_id="si_1",
    )
    paid_payment(account, subscription_lot, subscription=subscription, settled_at=at(4))
    grant = ledger.lot_grant(
        account=account, name="Goodwill", minutes=60, expires_at=at(30), reason="Sorry", actor=staff
    )
    ledger.usage_record(account=account, minutes=60, occurred_at=at(14, 9), tutor="Jonas Weber", subject="Physics")
    ledger.lot_adjust(lot=bought, minutes=-30, reason="Double booking")
    ledger.lot_reverse(lot=bought, minutes=60, reason="Refund re_9")
    ledger.lot_hold(lot=grant, minutes=30, reason="Dispute")
    ledger.lot_release(lot=grant, minutes=30, reason="Dispute won")
    november.shift(timedelta(days=100))
    ledger.lots_expire_due()

    statement = statement_build(account=account, start=date(2026, 11, 1), end=date(2027, 3, 1))

    assert [(line.kind, line.description) for line in statement.lines] == [
        (LineKind.SUBSCRIPTION, "Subscription period: Monthly 8 h: November 2026"),
        (LineKind.SESSION, "Session: Physics with Jonas Weber"),  # 09:00, before the grant at noon
        (LineKind.GRANT, "Grant: Goodwill"),
        (LineKind.ADJUSTMENT, "Adjustment: Double booking"),
        (LineKind.REFUND, "Refund: Standard"),
        (LineKind.DISPUTE_HOLD, "Held for a dispute: Goodwill"),
        (LineKind.DISPUTE_RELEASE, "Released after a dispute: Goodwill"),
        (LineKind.EXPIRY, "Expiry: Goodwill"),
        (LineKind.EXPIRY, "Expiry: Standard"),
        (LineKind.EXPIRY, "Expiry: Monthly 8 h: November 2026"),
    ]
    assert statement.opening_minutes == 600
    assert statement.closing_minutes == 0
    assert_reconciles(statement)


def test_a_reopened_expiry_and_a_purchase_read_as_such(november):
    account = make_student()
    lot = credit(account, 120, days_valid=2, bought_days_ago=0, name="Starter")
    november.shift(timedelta(days=3))
    ledger.lots_expire_due()
    hours_actions.lot_extend(
        lot=lot, expires_at=timezone.now() + timedelta(days=5), reason="Illness", actor=make_staff(), key="k-1"
    )

    statement = statement_build(account=account, start=date(2026, 11, 1), end=date(2026, 11, 30))

    assert [line.kind for line in statement.lines] == [LineKind.PURCHASE, LineKind.EXPIRY, LineKind.EXPIRY_REOPENED]
    assert statement.closing_minutes == 120


def paid_payment(account, lot, *, settled_at, amount_cents=15000, currency="EUR", subscription=None):
    plan = make_plan(f"Plan {secrets.token_hex(3)}")
    return Payment.objects.create(
        account=account,
        plan=plan,
        kind=Payment.Kind.SUBSCRIPTION if subscription else Payment.Kind.PURCHASE,
        amount_cents=amount_cents,
        currency=currency,
        minutes=lot.minutes_purchased,
        validity_days=90,
        status=Payment.Status.SUCCEEDED,
        idempotency_key=secrets.token_hex(8),
        lot=lot,
        subscription=subscription,
        settled_at=settled_at,
    )


def test_money_paid_and_refunded_in_the_range_per_currency(november):
    account = make_student()
    october = paid_payment(account, credit(account, 600, bought_days_ago=30), settled_at=at(14) - timedelta(days=30))
    first = paid_payment(account, credit(account, 600), settled_at=at(2))
    paid_payment(account, credit(account, 300), settled_at=at(3), amount_cents=9000, currency="GBP")
    Refund.objects.create(payment=first, amount_cents=5000, currency="EUR", status=Refund.Status.SUCCEEDED)
    Refund.objects.create(payment=october, amount_cents=1000, currency="EUR", status=Refund.Status.PENDING)
    Refund.objects.create(payment=october, amount_cents=700, currency="EUR", status=Refund.Status.FAILED)
    with time_machine.travel(datetime(2026, 12, 2, tzinfo=BERLIN)):
        Refund.objects.create(payment=first, amount_cents=2500, currency="EUR", status=Refund.Status.SUCCEEDED)

    statement = statement_build(account=account, start=date(2026, 11, 1), end=date(2026, 11, 30))

    assert statement.paid == (("EUR", 15000), ("GBP", 9000))
    assert statement.refunded == (("EUR", 6000),)


def test_the_range_is_in_the_students_days(november):
    """A session at 23:30 on 31 October in Lisbon is 00:30 on 1 November in Berlin: Lisbon's
    November statement leaves it out."""
    account = make_student(time_zone="Europe/Lisbon")
    credit(account, 600, bought_days_ago=30)
    ledger.usage_record(
        account=account,
        minutes=60,
        occurred_at=datetime(2026, 10, 31, 23, 30, tzinfo=ZoneInfo("Europe/Lisbon")),
        tutor="T",
        subject="S",
    )

    statement = statement_build(account=account, start=date(2026, 11, 1), end=date(2026, 11, 30))

    assert statement.opening_minutes == 540 and statement.lines == ()
    assert statement_default_range(account=account) == (date(2026, 10, 1), date(2026, 10, 31))


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2026, 11, 30), date(2026, 11, 1), RANGE_BACKWARDS),
        (date(2020, 1, 1), date(2025, 1, 1), RANGE_TOO_LONG % {"years": 5}),
        (date(1999, 12, 31), date(2000, 1, 5), RANGE_OUT_OF_BOUNDS % {"first": "1 Jan 2000", "last": "31 Dec 2199"}),
        (date(2199, 12, 1), date(9999, 12, 31), RANGE_OUT_OF_BOUNDS % {"first": "1 Jan 2000", "last": "31 Dec 2199"}),
    ],
)
def test_a_range_that_cannot_be_a_statement_is_refused_with_why(start, end, message):
    with pytest.raises(StatementRangeInvalid) as refused:
        statement_range_check(start, end)
    assert str(refused.value) == message


def test_five_whole_years_and_a_single_day_are_statements():
    statement_range_check(date(2020, 1, 1), date(2024, 12, 31))
    statement_range_check(date(2026, 11, 5), date(2026, 11, 5))
    statement_range_check(date(2024, 2, 29), date(2029, 2, 28))


def test_the_pdf_shows_opening_lines_closing_and_money(november):
    account = make_student(first_name="Ana", last_name="Silva")
    lot = credit(account, 600, bought_days_ago=30, name="Standard")
    paid_payment(account, lot, settled_at=at(1))
    ledger.usage_record(
        account=account, minutes=90, occurred_at=at(12, 16, 5), tutor="Dr. Maria Keller", subject="Mathematics"
    )

    statement = statement_build(account=account, start=date(2026, 11, 1), end=date(2026, 11, 30))
    text = pdf_text(statement_pdf(statement=statement))

    for expected in (
        "Statement of account",
        "Ana Silva",
        "1 Nov 2026 – 30 Nov 2026",
        "Opening balance on 1 Nov 2026 10 h",
        "Closing balance on 30 Nov 2026 8.5 h",
        "12 Nov 2026, 16:05",
        "Session: Mathematics with Dr. Maria Keller",
        "Paid in this period: €150.00",
        "Refunded in this period: €0.00",
        "Statement of account: November 2026 · page 1 of 1",
    ):
        assert expected in text, expected
    assert statement.filename("pdf") == "statement-2026-11.pdf"


def test_a_statement_without_movements_says_so(november):
    account = make_student()
    statement = statement_build(account=account, start=date(2026, 11, 3), end=date(2026, 11, 9))

    text = pdf_text(statement_pdf(statement=statement))

    assert "No hours came in or went out in this period." in text
    assert statement.filename("csv") == "statement-2026-11-03-to-2026-11-09.csv"


def test_the_pdf_reads_in_the_active_language(november):
    account = make_student()
    credit(account, 600, bought_days_ago=30)
    statement = statement_build(account=account, start=date(2026, 11, 1), end=date(2026, 11, 30))

    with translation.override("pt-pt"):
        text = pdf_text(statement_pdf(statement=statement))

    assert "1/11/2026" in text and "novembro de 2026" in text


def test_the_csv_has_a_row_per_line_between_opening_and_closing(november):
    account = make_student()
    lot = credit(account, 600, bought_days_ago=30, name="Standard")
    paid_payment(account, lot, settled_at=at(1))
    ledger.usage_record(account=account, minutes=45, occurred_at=at(12, 16), tutor="T", subject="=cmd|' /C calc'!A0")
    statement = statement_build(account=account, start=date(2026, 11, 1), end=date(2026, 11, 30))

    rows = list(statement_csv_rows(statement=statement))

    assert rows == [
        [
            "Date",
            "Type",
            "Description",
            "Minutes in",
            "Minutes out",
            "Balance (minutes)",
            "Hours in",
            "Hours out",
            "Balance (hours)",
        ],
        ["2026-11-01", "Opening balance", "", "", "", 600, "", "", "10.00"],
        [
            "2026-11-12T16:00:00+01:00",
            "Session",
            "=cmd|' /C calc'!A0 with T",
            0,
            45,
            555,
            "0.00",
            "0.75",
            "9.25",
        ],
        ["2026-11-30", "Closing balance", "", "", "", 555, "", "", "9.25"],
        ["2026-11-30", "Paid", "EUR", "", "", "", "", "", "150.00"],
    ]
    written = io.StringIO()
    csv.writer(written).writerows(rows)  # every cell is one csv can write


# ---- the monthly email ---------------------------------------------------------------------------


@pytest.fixture
def opted_in(november):
    """A student who asked for the monthly email, with a November of hours; the clock then moves to
    the first of December, 07:00, when the job runs."""
    account = make_student(first_name="Ana")
    statement_emails_set(account=account, enabled=True)
    credit(account, 600, bought_days_ago=1, name="Standard")
    november.move_to(datetime(2026, 12, 1, 7, 0, tzinfo=BERLIN))
    return account


def test_last_months_statement_is_emailed_once_with_the_pdf(opted_in):
    make_student("quiet@example.com")  # did not opt in
    statement_emails_set(account=make_student("changed.mind@example.com"), enabled=False)

    assert statements_email_due() == 1
    assert email_monthly_statements.call_local() == 0  # the job again (the next hour): nothing new

    [message] = mail.outbox
    assert message.to == [opted_in.user.email]
    assert message.subject == "Your statement for November 2026"
    assert "You began the month with 0 h and ended it with 10 h" in message.body
    [(filename, content, mimetype)] = message.attachments
    assert (filename, mimetype) == ("statement-2026-11.pdf", "application/pdf")
    assert content.startswith(b"%PDF") and "Closing balance on 30 Nov 2026 10 h" in pdf_text(content)
    claim = StatementEmail.objects.get()
    assert (claim.account, claim.month, claim.attempts) == (opted_in, date(2026, 11, 1), 1)
    assert claim.sent_at is not None


def test_the_email_is_in_the_students_language(opted_in):
    opted_in.user.language = "pt-pt"
    opted_in.user.save()

    statements_email_due()

    [message] = mail.outbox
    assert "novembro de 2026" in message.subject
    assert "30/11/2026" in pdf_text(message.attachments[0][1])


def test_a_failed_send_is_tried_again_later_and_sent_once(opted_in, monkeypatch):
    real_send = EmailMultiAlternatives.send
    monkeypatch.setattr(EmailMultiAlternatives, "send", lambda self, *args, **kwargs: 1 / 0)

    assert statements_email_due() == 0
    monkeypatch.setattr(EmailMultiAlternatives, "send", real_send)
    assert statements_email_due() == 0  # the failed claim is fresh: maybe still being sent elsewhere
    assert mail.outbox == []

    with time_machine.travel(timedelta(minutes=31)):
        assert statements_email_due() == 1
        assert statements_email_due() == 0

    assert len(mail.outbox) == 1
    claim = StatementEmail.objects.get()
    assert claim.attempts == 2 and claim.sent_at is not None


def test_a_send_that_keeps_failing_is_given_up_after_five_attempts(opted_in, monkeypatch):
    monkeypatch.setattr(EmailMultiAlternatives, "send", lambda self, *args, **kwargs: 1 / 0)

    for hour in range(8):
        with time_machine.travel(timedelta(hours=hour)):
            statements_email_due()

    assert StatementEmail.objects.get().attempts == EMAIL_ATTEMPTS_MAX


def test_a_student_who_joined_this_month_gets_nothing_yet(opted_in):
    statement_emails_set(account=make_student("new@example.com"), enabled=True)

    statements_email_due()

    assert [message.to for message in mail.outbox] == [[opted_in.user.email]]


def test_a_movement_at_midnight_belongs_to_the_day_it_starts(november):
    account = make_student()
    credit(account, 600, bought_days_ago=30)
    ledger.usage_record(account=account, minutes=60, occurred_at=at(1, 0, 0), tutor="T", subject="S")

    october = statement_build(account=account, start=date(2026, 10, 1), end=date(2026, 10, 31))
    november = statement_build(account=account, start=date(2026, 11, 1), end=date(2026, 11, 30))

    assert october.closing_minutes == november.opening_minutes == 600
    assert [line.minutes for line in november.lines] == [-60]
