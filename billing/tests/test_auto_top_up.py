"""Automatic top-up against a real localstripe: a fall below the student's level buys their package
once per episode, within the monthly cap, with the one-click machinery (hours, receipt, alerts,
fraud rules); 3-D Secure, declines, the cap, a blocked account, a removed card or a package off sale
pause it, and only the student (or the month, for the cap) resumes it."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from alerts import notifications
from alerts.models import Notification
from billing import ledger, payments, topups
from billing.cards import card_forget
from billing.errors import ReasonRequired
from billing.fraud.blocks import account_block
from billing.models import AuditEntry, AutoTopUp, AutoTopUpEvent, FraudFlag, Lot, Payment, Receipt
from billing.tests.builders import add_card, credit, make_console_user, make_plan, make_student, use
from billing.tests.concurrency import run_at_once
from billing.tests.network import LossyProxy, charge_answers_lost

pytestmark = pytest.mark.django_db

Status, Reason, Event = AutoTopUp.Status, AutoTopUp.PauseReason, AutoTopUpEvent.Kind
DECLINING_CARD = "4000000000000341"  # saved fine, declined when charged
THREE_D_SECURE_CARD = "4000002760003184"


@pytest.fixture
def account():
    return make_student()


@pytest.fixture
def plan():
    return make_plan("Ten hours", minutes=600, price_cents=15000, validity_days=90)


def turn_on(account, plan, card, *, threshold=120, count_cap=2, amount_cap=30000):
    return topups.auto_top_up_save(
        account=account,
        threshold_minutes=threshold,
        plan=plan,
        card=card,
        monthly_count_cap=count_cap,
        monthly_amount_cap_cents=amount_cap,
        actor=account.user,
    )


def setting_of(account):
    return AutoTopUp.objects.get(account=account)


def auto_payments(account):
    return Payment.objects.filter(account=account, kind=Payment.Kind.AUTO_TOP_UP).order_by("pk")


def charges_at_stripe(localstripe, account):
    customer = account.__class__.objects.get(pk=account.pk).stripe_customer_id
    return [intent for intent in localstripe.payment_intents() if intent["customer"] == customer]


def cover(account, plan, localstripe, capture, number="4242424242424242"):
    """5 h, a card (`number`), and automatic top-up below 2 h, saved and committed (the check after
    saving finds nothing to do). Returns the card."""
    credit(account, 300)
    card = add_card(account, localstripe, number)
    with capture(execute=True):
        turn_on(account, plan, card)
    return card


@pytest.fixture
def covered(account, plan, localstripe, django_capture_on_commit_callbacks):
    return cover(account, plan, localstripe, django_capture_on_commit_callbacks)


def record(account, minutes, capture):
    """A session recorded and committed: its check runs on (immediate) Huey after the commit."""
    with capture(execute=True):
        return use(account, minutes)


class TestSettings:
    def test_saving_turns_it_on_and_says_the_most_it_can_charge_in_a_month(self, account, plan, localstripe):
        card = add_card(account, localstripe)
        setting = turn_on(account, plan, card, count_cap=3, amount_cap=40000)
        assert setting.status == Status.ACTIVE
        limit = topups.monthly_limit(plan=plan, count_cap=3, amount_cap_cents=40000)
        assert (limit.top_ups, limit.amount_cents) == (2, 30000)  # the amount allows two of three
        assert "€300.00" in topups.monthly_limit_text(limit)
        assert AutoTopUpEvent.objects.filter(auto_top_up=setting, kind=Event.SAVED).count() == 1

    def test_it_is_off_until_the_student_turns_it_on(
        self, account, plan, localstripe, django_capture_on_commit_callbacks
    ):
        add_card(account, localstripe)
        credit(account, 60)
        record(account, 30, django_capture_on_commit_callbacks)
        assert not AutoTopUp.objects.exists()
        assert not auto_payments(account).exists()

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"count_cap": 0}, "between 1 and"),
            ({"amount_cap": 0}, "above zero"),
            ({"amount_cap": 14999}, "more than the monthly amount"),
            ({"threshold": 0}, "above zero"),
        ],
    )
    def test_a_cap_or_level_that_could_never_work_is_refused(self, account, plan, localstripe, change, message):
        card = add_card(account, localstripe)
        with pytest.raises(topups.AutoTopUpRefused, match=message):
            turn_on(account, plan, card, **change)
        assert not AutoTopUp.objects.exists()

    def test_a_package_not_for_sale_or_a_subscription_is_refused(self, account, plan, localstripe):
        card = add_card(account, localstripe)
        plan.is_active = False
        plan.save()
        with pytest.raises(topups.AutoTopUpRefused, match="not for sale"):
            turn_on(account, plan, card)

    def test_another_students_card_is_refused(self, account, plan, localstripe):
        other = make_student()
        card = add_card(other, localstripe)
        with pytest.raises(topups.AutoTopUpRefused, match="not one of your saved cards"):
            turn_on(account, plan, card)
        assert not AutoTopUp.objects.exists()


class TestTopUp:
    def test_a_session_taking_the_balance_below_the_level_buys_the_package_once(
        self, account, plan, covered, localstripe, django_capture_on_commit_callbacks
    ):
        record(account, 200, django_capture_on_commit_callbacks)  # 5 h - 3 h 20 = 1 h 40 < 2 h
        [payment] = auto_payments(account)
        assert payment.status == Payment.Status.SUCCEEDED
        assert payment.payment_method == covered
        assert Lot.objects.filter(account=account, payment=payment, minutes_purchased=600).exists()
        assert Receipt.objects.filter(payment=payment).exists()
        account.refresh_from_db()
        assert account.balance_minutes == 100 + 600
        alert = Notification.objects.get(kind=Notification.Kind.PAYMENT_SUCCEEDED, subject_id=payment.pk)
        assert alert.title == "Topped up 10 h automatically, €150.00"
        events = list(AutoTopUpEvent.objects.filter(payment=payment).values_list("kind", flat=True))
        assert events == [Event.CHARGED]
        assert len(charges_at_stripe(localstripe, account)) == 1

    def test_one_episode_buys_once_however_many_sessions_and_scans(
        self, account, plan, covered, localstripe, django_capture_on_commit_callbacks
    ):
        # A small package: after it the balance is still below the level, so the episode stays open.
        small = make_plan("Half hour", minutes=30, price_cents=1000)
        turn_on(account, small, covered, threshold=400, count_cap=5, amount_cap=10000)
        for minutes in (10, 20, 10):  # 4 h 50, bought 30 min (5 h 20), 5 h, 4 h 50: below all along
            record(account, minutes, django_capture_on_commit_callbacks)
        for _ in range(3):
            topups.auto_top_ups_scan()
        assert auto_payments(account).count() == 1
        assert len(charges_at_stripe(localstripe, account)) == 1
        assert AutoTopUpEvent.objects.filter(kind=Event.TRIGGERED).count() == 1

    def test_back_above_the_level_ends_the_episode_and_the_next_fall_buys_again(
        self, account, plan, covered, localstripe, django_capture_on_commit_callbacks
    ):
        record(account, 200, django_capture_on_commit_callbacks)  # bought: 11 h 40 now
        assert setting_of(account).episode_open is True
        topups.auto_top_ups_scan()  # sees the balance back above: the episode is over
        assert setting_of(account).episode_open is False
        record(account, 600, django_capture_on_commit_callbacks)  # 1 h 40 again
        payments = list(auto_payments(account))
        assert [p.status for p in payments] == [Payment.Status.SUCCEEDED] * 2
        assert len({p.idempotency_key for p in payments}) == 2
        assert len(charges_at_stripe(localstripe, account)) == 2

    @pytest.mark.parametrize("lowering", ["expiry", "refund", "dispute hold"])
    def test_every_change_that_lowers_the_balance_is_checked(
        self, account, plan, localstripe, django_capture_on_commit_callbacks, lowering
    ):
        lot = credit(account, 300, days_valid=1)
        credit(account, 60, days_valid=30)
        card = add_card(account, localstripe)
        with django_capture_on_commit_callbacks(execute=True):
            turn_on(account, plan, card)
        with django_capture_on_commit_callbacks(execute=True):
            if lowering == "expiry":
                with time_machine.travel(timezone.now() + timedelta(days=2)):
                    ledger.lots_expire_due()
            elif lowering == "refund":
                ledger.lot_reverse(lot=lot, minutes=300, reason="Refunded")
            else:
                ledger.lot_hold(lot=lot, minutes=300, reason="Dispute")
        assert [p.status for p in auto_payments(account)] == [Payment.Status.SUCCEEDED]

    def test_saving_while_already_below_the_level_buys_at_once(
        self, account, plan, localstripe, django_capture_on_commit_callbacks
    ):
        credit(account, 30)
        card = add_card(account, localstripe)
        with django_capture_on_commit_callbacks(execute=True):
            turn_on(account, plan, card)
        assert auto_payments(account).get().status == Payment.Status.SUCCEEDED

    def test_the_fraud_rules_see_its_attempts(
        self, account, plan, localstripe, settings, django_capture_on_commit_callbacks
    ):
        settings.FRAUD_DECLINE_STREAK = 1
        cover(account, plan, localstripe, django_capture_on_commit_callbacks, DECLINING_CARD)
        record(account, 200, django_capture_on_commit_callbacks)
        payment = auto_payments(account).get()
        assert FraudFlag.objects.filter(rule=FraudFlag.Rule.DECLINES, payment=payment).exists()


@pytest.mark.django_db(transaction=True)
def test_two_checks_at_once_on_two_connections_charge_once(account, plan, localstripe):
    """The same episode checked by two workers at the same moment (the sessions' checks, the scan):
    one opens it and makes its payment; the other finds it open. One charge at localstripe."""
    credit(account, 300)
    card = add_card(account, localstripe)
    turn_on(account, plan, card)  # committed (no test transaction): its own check finds 5 h
    AutoTopUp.objects.filter(account=account).update(status=Status.OFF)
    use(account, 200)  # 1 h 40 left, checked while off
    AutoTopUp.objects.filter(account=account).update(status=Status.ACTIVE)

    results, errors = run_at_once(lambda: topups.auto_top_ups_check(account_ids=[account.pk]), 2)
    assert errors == []
    assert sorted(len(charged) for charged in results) == [0, 1]
    assert auto_payments(account).count() == 1
    assert len(charges_at_stripe(localstripe, account)) == 1
    account.refresh_from_db()
    assert account.balance_minutes == 100 + 600


class TestPauses:
    def test_a_card_asking_for_3d_secure_pauses_it_and_alerts_with_the_complete_link(
        self, account, plan, localstripe, django_capture_on_commit_callbacks
    ):
        cover(account, plan, localstripe, django_capture_on_commit_callbacks, THREE_D_SECURE_CARD)
        record(account, 200, django_capture_on_commit_callbacks)
        payment = auto_payments(account).get()
        assert payment.status == Payment.Status.REQUIRES_ACTION
        setting = setting_of(account)
        assert (setting.status, setting.pause_reason) == (Status.PAUSED, Reason.AUTHENTICATION)
        alert = Notification.objects.get(kind=Notification.Kind.PAYMENT_NEEDS_ACTION, subject_id=payment.pk)
        assert alert.link.endswith(f"?resume={payment.pk}")
        assert "automatic top-up" in alert.title.lower()
        record(account, 10, django_capture_on_commit_callbacks)
        topups.auto_top_ups_scan()
        assert auto_payments(account).count() == 1  # paused: nothing more is charged

    def test_one_decline_waits_a_day_and_tries_once_more_and_a_second_pauses_it_with_the_reason(
        self, account, plan, localstripe, django_capture_on_commit_callbacks
    ):
        cover(account, plan, localstripe, django_capture_on_commit_callbacks, DECLINING_CARD)
        record(account, 200, django_capture_on_commit_callbacks)
        first = auto_payments(account).get()
        assert first.status == Payment.Status.FAILED
        setting = setting_of(account)
        assert (setting.status, setting.declines_in_row, setting.episode_open) == (Status.ACTIVE, 1, False)
        assert Notification.objects.get(subject_id=first.pk).title == "Automatic top-up was declined"
        topups.auto_top_ups_scan()
        assert auto_payments(account).count() == 1  # not again within the day
        with (
            time_machine.travel(timezone.now() + timedelta(hours=25)),
            django_capture_on_commit_callbacks(execute=True),
        ):
            topups.auto_top_ups_scan()
        assert auto_payments(account).count() == 2
        setting.refresh_from_db()
        assert (setting.status, setting.pause_reason) == (Status.PAUSED, Reason.DECLINED)
        assert setting.pause_detail == auto_payments(account).last().failure_message != ""
        with time_machine.travel(timezone.now() + timedelta(days=3)):
            topups.auto_top_ups_scan()
        assert auto_payments(account).count() == 2  # paused until the student says so

    def test_resuming_while_the_banks_check_is_open_starts_nothing_and_its_charge_is_recorded_later(
        self, account, plan, localstripe, django_capture_on_commit_callbacks
    ):
        cover(account, plan, localstripe, django_capture_on_commit_callbacks, THREE_D_SECURE_CARD)
        record(account, 200, django_capture_on_commit_callbacks)
        waiting = auto_payments(account).get()
        with django_capture_on_commit_callbacks(execute=True):
            setting = topups.auto_top_up_resume(account=account, actor=account.user)
        assert (setting.status, setting.episode_open) == (Status.ACTIVE, True)  # its payment may still charge
        assert auto_payments(account).count() == 1

        localstripe.browser_authenticate(payments.payment_client_secret(payment=waiting), success=True)
        payments.payment_refresh(payment=waiting)  # the student completed it; the scan records it
        topups.auto_top_ups_scan()
        assert AutoTopUpEvent.objects.filter(payment=waiting, kind=Event.CHARGED).count() == 1
        assert auto_payments(account).count() == 1

    def test_reaching_the_monthly_cap_pauses_it_until_the_month_turns(
        self, account, plan, localstripe, settings, django_capture_on_commit_callbacks
    ):
        school = ZoneInfo(settings.TIME_ZONE)  # the school's calendar month
        with time_machine.travel(datetime(2026, 11, 20, 12, tzinfo=school), tick=False):
            credit(account, 300)
            card = add_card(account, localstripe)
            with django_capture_on_commit_callbacks(execute=True):
                turn_on(account, plan, card, count_cap=1, amount_cap=50000)
            record(account, 200, django_capture_on_commit_callbacks)
            setting = setting_of(account)
            assert (setting.status, setting.pause_reason) == (Status.PAUSED, Reason.CAP)
            assert setting.resumes_at == datetime(2026, 12, 1, tzinfo=school)
            alert = Notification.objects.get(kind=Notification.Kind.AUTO_TOP_UP_PAUSED)
            assert "(1 top-up, €150.00)" in alert.body and "1 Dec 2026" in alert.body
            record(account, 650, django_capture_on_commit_callbacks)  # below again: the cap holds
            assert auto_payments(account).count() == 1
        with time_machine.travel(datetime(2026, 12, 1, 0, 5, tzinfo=school), tick=False):
            topups.auto_top_ups_scan()
        assert auto_payments(account).count() == 2
        assert setting_of(account).resumes_at is not None  # the new month's one top-up reached the cap again

    def test_a_blocked_account_is_never_charged(
        self, account, plan, covered, localstripe, django_capture_on_commit_callbacks
    ):
        finance = make_console_user("fiona@example.com")
        account_block(account=account, actor=finance, reason="Confirmed fraud")
        record(account, 200, django_capture_on_commit_callbacks)
        assert not auto_payments(account).exists()
        assert setting_of(account).pause_reason == Reason.BLOCKED

    def test_a_removed_card_is_never_charged(
        self, account, plan, covered, localstripe, django_capture_on_commit_callbacks
    ):
        card_forget(card=covered)
        record(account, 200, django_capture_on_commit_callbacks)
        assert not auto_payments(account).exists()
        assert setting_of(account).pause_reason == Reason.CARD_REMOVED
        assert Notification.objects.filter(kind=Notification.Kind.AUTO_TOP_UP_PAUSED).exists()

    def test_a_package_taken_off_sale_is_never_bought(
        self, account, plan, covered, localstripe, django_capture_on_commit_callbacks
    ):
        plan.is_active = False
        plan.save()
        record(account, 200, django_capture_on_commit_callbacks)
        assert not auto_payments(account).exists()
        assert setting_of(account).pause_reason == Reason.PLAN_UNAVAILABLE


class TestStaff:
    def test_finance_pauses_it_audited_and_the_student_cannot_resume_that(
        self, account, plan, covered, localstripe, django_capture_on_commit_callbacks
    ):
        finance = make_console_user("fiona@example.com")
        topups.auto_top_up_pause_by_staff(account=account, actor=finance, reason="Card under investigation")
        entry = AuditEntry.objects.get(action="auto_top_up.pause")
        assert entry.account_id == account.pk and entry.reason == "Card under investigation"
        with pytest.raises(topups.AutoTopUpRefused, match="paused automatic top-up"):
            topups.auto_top_up_resume(account=account, actor=account.user)
        record(account, 200, django_capture_on_commit_callbacks)
        assert not auto_payments(account).exists()
        with django_capture_on_commit_callbacks(execute=True):
            topups.auto_top_up_resume_by_staff(account=account, actor=finance, reason="Cleared")
        assert auto_payments(account).get().status == Payment.Status.SUCCEEDED
        assert AuditEntry.objects.filter(action="auto_top_up.resume").count() == 1

    def test_a_pause_needs_a_reason(self, account, plan, covered):
        finance = make_console_user("fiona@example.com")
        with pytest.raises(ReasonRequired):
            topups.auto_top_up_pause_by_staff(account=account, actor=finance, reason="  ")
        assert setting_of(account).status == Status.ACTIVE


REFUSED = (400, {"error": {"type": "invalid_request_error", "message": "No such thing."}})
RATE_LIMITED = (429, {"error": {"type": "rate_limit_error", "message": "Too many requests."}})


class TestFailuresThatAreNotDeclines:
    def test_stripe_unreachable_tries_again_an_hour_later_quietly_and_pauses_after_four(
        self, account, plan, covered, localstripe, settings, django_capture_on_commit_callbacks
    ):
        proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": RATE_LIMITED})
        settings.STRIPE_API_BASE = proxy.url  # Stripe answers "too many requests": nothing charged
        try:
            record(account, 200, django_capture_on_commit_callbacks)
            assert [p.failure_code for p in auto_payments(account)] == [Payment.Failure.PROVIDER_UNAVAILABLE]
            topups.auto_top_ups_scan()
            assert auto_payments(account).count() == 1  # not again within the hour
            for hours in (1, 2, 3):
                with time_machine.travel(timezone.now() + timedelta(hours=hours, minutes=1)):
                    topups.auto_top_ups_scan()
        finally:
            proxy.close()
        assert auto_payments(account).count() == 4
        setting = setting_of(account)
        assert (setting.status, setting.pause_reason) == (Status.PAUSED, Reason.FAILING)
        assert not Notification.objects.filter(kind=Notification.Kind.PAYMENT_FAILED).exists()
        notifications.auto_top_up_notify()
        alert = Notification.objects.get(kind=Notification.Kind.AUTO_TOP_UP_PAUSED)
        assert "could not reach your bank 4 times in a row" in alert.body
        assert localstripe.payment_intents() == []

    def test_stripe_refusing_the_request_pauses_it_at_once(
        self, account, plan, covered, localstripe, settings, django_capture_on_commit_callbacks
    ):
        proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": REFUSED})
        settings.STRIPE_API_BASE = proxy.url
        try:
            record(account, 200, django_capture_on_commit_callbacks)
        finally:
            proxy.close()
        setting = setting_of(account)
        assert (setting.status, setting.pause_reason) == (Status.PAUSED, Reason.REFUSED)
        assert auto_payments(account).count() == 1

    def test_a_charge_whose_answer_was_lost_is_recorded_once_it_settles(
        self, account, plan, covered, localstripe, settings, django_capture_on_commit_callbacks
    ):
        with charge_answers_lost(localstripe, settings):
            record(account, 200, django_capture_on_commit_callbacks)
        lost = auto_payments(account).get()
        assert lost.status == Payment.Status.PROCESSING
        topups.auto_top_ups_scan()
        assert auto_payments(account).count() == 1  # its episode stays open: it may have charged
        payments.payment_refresh(payment=lost)  # the reconciliation (or the webhook) settles it
        topups.auto_top_ups_scan()
        assert AutoTopUpEvent.objects.filter(payment=lost, kind=Event.CHARGED).exists()
        assert len(charges_at_stripe(localstripe, account)) == 1


class TestStaffPauseOverOthers:
    def test_an_outcome_after_finance_paused_keeps_finances_pause(
        self, account, plan, localstripe, settings, django_capture_on_commit_callbacks
    ):
        cover(account, plan, localstripe, django_capture_on_commit_callbacks, THREE_D_SECURE_CARD)
        with charge_answers_lost(localstripe, settings):
            record(account, 200, django_capture_on_commit_callbacks)
        finance = make_console_user("fiona@example.com")
        topups.auto_top_up_pause_by_staff(account=account, actor=finance, reason="Checking the card")
        payments.payment_refresh(payment=auto_payments(account).get())  # Stripe: waiting for 3-D Secure
        topups.auto_top_ups_scan()
        setting = setting_of(account)
        assert (setting.status, setting.pause_reason) == (Status.PAUSED, Reason.STAFF)
        assert AutoTopUpEvent.objects.filter(kind=Event.AWAITING_BANK).count() == 1
        with pytest.raises(topups.AutoTopUpRefused):
            topups.auto_top_up_resume(account=account, actor=account.user)

    def test_finance_lifting_its_pause_gives_back_the_students_own(self, account, plan, covered):
        finance = make_console_user("fiona@example.com")
        topups.auto_top_up_pause(account=account, actor=account.user)
        topups.auto_top_up_pause_by_staff(account=account, actor=finance, reason="Checking")
        topups.auto_top_up_resume_by_staff(account=account, actor=finance, reason="Checked")
        setting = setting_of(account)
        assert (setting.status, setting.pause_reason) == (Status.PAUSED, Reason.STUDENT)


def test_saving_during_a_cap_pause_keeps_it_unless_the_new_cap_allows_more(
    account, plan, localstripe, django_capture_on_commit_callbacks
):
    credit(account, 300)
    card = add_card(account, localstripe)
    with django_capture_on_commit_callbacks(execute=True):
        turn_on(account, plan, card, count_cap=1, amount_cap=15000)
    record(account, 200, django_capture_on_commit_callbacks)
    assert setting_of(account).pause_reason == Reason.CAP
    with pytest.raises(topups.AutoTopUpRefused, match="resumes by itself"):
        topups.auto_top_up_resume(account=account, actor=account.user)
    turn_on(account, plan, card, count_cap=1, amount_cap=30000)  # still one top-up a month
    assert setting_of(account).pause_reason == Reason.CAP
    assert AutoTopUpEvent.objects.filter(kind=Event.PAUSED).count() == 1  # no second pause, no second alert
    turn_on(account, plan, card, count_cap=2, amount_cap=30000)
    assert setting_of(account).status == Status.ACTIVE
