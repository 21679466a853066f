"""The alert rules over time: each alert once per subject and period, whatever runs how often."""

import dataclasses
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Notification
from alerts.notifications import alerts_scan, balance_check, payment_notify
from alerts.selectors import unread_count
from billing import ledger, stripe_gateway
from billing.fraud.blocks import account_block
from billing.models import Payment, PaymentMethod
from billing.payments import PAYMENT_UNDER_REVIEW, payment_intent_settle, payment_start, payment_token_issue
from billing.tests.builders import add_card, credit, make_paid_payment, make_plan, make_student, use
from billing.tests.concurrency import run_at_once
from billing.tests.network import charge_answers_lost

pytestmark = pytest.mark.django_db


def kinds(account=None):
    alerts = Notification.objects.order_by("id")
    if account is not None:
        alerts = alerts.filter(recipient=account.user)
    return list(alerts.values_list("kind", flat=True))


def test_a_lot_warns_at_7_days_then_at_1_day_then_says_it_expired():
    account = make_student()
    lot = credit(account, 600, days_valid=10)
    use(account, 90)
    start = timezone.now()

    with time_machine.travel(start + timedelta(days=3, hours=12)):
        assert alerts_scan() == 1
        assert alerts_scan() == 0
    with time_machine.travel(start + timedelta(days=9, hours=12)):
        alerts_scan()
        alerts_scan()
    with time_machine.travel(start + timedelta(days=10, hours=1)):
        ledger.lots_expire_due()
        alerts_scan()
        alerts_scan()

    # Expiry leaves nothing, so the student also learns the balance is empty.
    assert kinds(account) == ["lot_expiring_7d", "lot_expiring_1d", "balance_depleted", "lot_expired"]
    expired = Notification.objects.get(kind="lot_expired")
    assert expired.title == "8.5 h expired unused"
    assert expired.link == f"/lots/{lot.pk}/"
    soon = Notification.objects.get(kind="lot_expiring_1d")
    assert soon.title == "8.5 h expire tomorrow" and "of your Standard package expire on" in soon.body


def test_low_balance_alerts_once_per_top_up():
    account = make_student()
    credit(account, 600)
    use(account, 500)

    alerts_scan()
    alerts_scan()
    assert kinds(account) == ["low_balance"]
    assert Notification.objects.get().title == "Only 1.67 h left"

    credit(account, 600)  # a top-up starts a new period
    alerts_scan()
    use(account, 650)
    alerts_scan()

    assert kinds(account) == ["low_balance", "low_balance"]


def test_an_empty_balance_says_so():
    account = make_student()
    credit(account, 60)
    use(account, 60)

    alerts_scan()

    assert kinds(account) == ["balance_depleted"]


def test_a_new_student_without_hours_is_not_nagged():
    make_student()
    assert alerts_scan() == 0


def test_a_session_that_drops_the_balance_under_the_threshold_alerts_at_once():
    account = make_student()
    credit(account, 180)
    use(account, 30)
    assert balance_check(account=account) == 0

    use(account, 60)

    assert balance_check(account=account) == 1
    assert balance_check(account=account) == 0


def test_a_card_expiring_next_month_is_mentioned_once():
    account = make_student()
    today = timezone.localdate()
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    PaymentMethod.objects.create(
        account=account, stripe_payment_method_id="pm_1", brand="visa", last4="4242",
        exp_month=month, exp_year=year, is_default=True,
    )  # fmt: skip
    PaymentMethod.objects.create(
        account=account, stripe_payment_method_id="pm_2", brand="visa", last4="1111", exp_month=month, exp_year=year + 2
    )

    alerts_scan()
    alerts_scan()

    [alert] = Notification.objects.all()
    assert alert.kind == "card_expiring" and "Visa 4242" in alert.title


class TestPaymentAlerts:
    def test_a_failed_payment_gives_the_reason_and_a_way_to_retry(self, localstripe):
        payment = make_paid_payment(localstripe, number="4000000000000341")

        payment_notify(payment=payment)
        alerts_scan()

        [alert] = Notification.objects.all()
        assert alert.kind == "payment_failed"
        assert "Your card was declined by your bank." in alert.body
        assert alert.link == "/#plans"

    def test_a_payment_left_waiting_for_3d_secure_links_back_to_it(self, localstripe):
        payment = make_paid_payment(localstripe, number="4000002760003184")

        payment_notify(payment=payment)  # the student is on the page, doing the check right now
        alerts_scan()
        assert not Notification.objects.exists()
        with time_machine.travel(timezone.now() + timedelta(minutes=16)):
            alerts_scan()

        alert = Notification.objects.get()
        assert alert.kind == "payment_needs_action" and alert.link == f"/?resume={payment.pk}"

    def test_a_blocked_account_is_not_asked_to_confirm_a_payment_it_can_no_longer_complete(
        self, localstripe, staff_user
    ):
        payment = make_paid_payment(localstripe, number="4000002760003184")
        account_block(account=payment.account, actor=staff_user, reason="Confirmed card testing")  # cancel queued

        with time_machine.travel(timezone.now() + timedelta(minutes=16)):
            alerts_scan()

        assert not Notification.objects.exists()

    def test_a_confirm_alert_raised_before_a_block_leaves_the_bell(self, localstripe, staff_user):
        payment = make_paid_payment(localstripe, number="4000002760003184")
        with time_machine.travel(timezone.now() + timedelta(minutes=16)):
            alerts_scan()
        account_block(account=payment.account, actor=staff_user, reason="Confirmed card testing")

        alerts_scan()

        assert Notification.objects.get(kind="payment_needs_action").resolved_at is not None
        assert unread_count(user=payment.account.user) == 0

    def test_alerts_that_stopped_being_true_leave_the_bell(self, localstripe):
        payment = make_paid_payment(localstripe, number="4000002760003184")
        with time_machine.travel(timezone.now() + timedelta(minutes=16)):
            alerts_scan()
        Payment.objects.filter(pk=payment.pk).update(status="failed", failure_code="canceled")

        alerts_scan()

        alert = Notification.objects.get()
        assert alert.resolved_at is not None
        assert unread_count(user=payment.account.user) == 0

    def test_a_payment_found_later_to_be_charged_another_amount_tells_the_student_it_is_under_review(
        self, localstripe, settings
    ):
        account = make_student()
        add_card(account, localstripe)
        plan = make_plan()
        with charge_answers_lost(localstripe, settings):
            payment = payment_start(
                account=account, token=payment_token_issue(account=account, plan=plan, kind="purchase")
            )
        [charged] = localstripe.payment_intents()
        intent = stripe_gateway.payment_intent_retrieve(charged["id"])
        payment_intent_settle(intent=dataclasses.replace(intent, amount_cents=1500))  # what the webhook says

        alerts_scan()
        alerts_scan()

        alert = Notification.objects.get()
        assert (alert.kind, alert.subject_id) == ("payment_under_review", payment.pk)
        assert alert.title == "A payment is under review"
        assert alert.body == f"Your payment for Standard (€150.00) is under review. {PAYMENT_UNDER_REVIEW}"
        assert "pi_" not in alert.body and "15.00" not in alert.body

    def test_the_pay_click_that_left_a_payment_for_review_tells_the_student_at_once(self, localstripe):
        payment = make_paid_payment(localstripe)
        Payment.objects.filter(pk=payment.pk).update(
            status="needs_review", failure_code="amount_mismatch", lot=None
        )  # as Stripe charging another amount leaves it
        payment.refresh_from_db()

        payment_notify(payment=payment)

        assert kinds(payment.account) == ["payment_under_review"]

    def test_a_succeeded_payment_links_its_receipt(self, localstripe):
        payment = make_paid_payment(localstripe)

        payment_notify(payment=payment)

        alert = Notification.objects.get()
        assert alert.kind == "payment_succeeded" and alert.title == "10 h added"
        assert alert.link == f"/receipts/{payment.receipt.pk}/pdf/"

    def test_old_payments_are_left_alone(self, localstripe):
        make_paid_payment(localstripe)
        Payment.objects.update(updated_at=timezone.now() - timedelta(days=3))
        assert alerts_scan() == 0


def scan_queries(students):
    for _ in range(students):
        account = make_student()
        credit(account, 200, days_valid=5)
        use(account, 150)
    with CaptureQueriesContext(connection) as queries:
        alerts_scan()
    return len(queries)


def test_the_scan_costs_the_same_few_queries_for_5_or_50_students():
    few = scan_queries(5)
    Notification.objects.all().delete()
    many = scan_queries(45)

    assert Notification.objects.count() == 100  # 50 low-balance and 50 expiring alerts
    assert few == many <= 29  # one query per rule and per resolved kind, whatever the number of students


@pytest.mark.django_db(transaction=True)
def test_scans_running_at_once_create_each_alert_once():
    for _ in range(10):
        account = make_student()
        credit(account, 200, days_valid=5)
        use(account, 150)

    _, errors = run_at_once(alerts_scan, 4)

    assert errors == []
    assert Notification.objects.count() == 20
