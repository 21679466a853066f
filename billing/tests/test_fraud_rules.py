"""Fraud rules, after each attempt and in the periodic scan, and their dedupe: one flag per rule,
account and period. The tests through payment_start use the real localstripe."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import payments
from billing.errors import AccountBlocked
from billing.fraud import blocks, review, rules
from billing.models import FraudFlag, Payment
from billing.tests.builders import add_card, make_plan, make_student
from billing.tests.fraud_attempts import NOW, attempt, card

pytestmark = pytest.mark.django_db


def attempt_and_check(account, plan, **fields):
    """An attempt followed by the check payment_start runs after it; returns the flags raised."""
    payment = attempt(account, plan, **fields)
    return rules.fraud_rules_check(account=account, payment=payment)


def flags_of(account, rule):
    return list(FraudFlag.objects.filter(account=account, rule=rule))


# Too many attempts in an hour


def test_attempts_up_to_the_limit_in_an_hour_raise_no_flag(frozen, plan):
    account = make_student()

    raised = [attempt_and_check(account, plan, minutes_ago=50 - 10 * n) for n in range(5)]

    assert raised == [[]] * 5
    assert not FraudFlag.objects.exists()


def test_one_attempt_over_the_limit_in_an_hour_raises_a_flag_with_its_evidence(frozen, plan):
    account = make_student()
    earlier = [attempt(account, plan, minutes_ago=59 - 10 * n) for n in range(5)]

    [flag] = attempt_and_check(account, plan)

    assert (flag.rule, flag.account, flag.status) == ("attempts", account, "open")
    assert flag.payment == Payment.objects.latest("created_at")
    assert flag.evidence["attempts"] == 6
    assert flag.evidence["limit"] == 5
    assert flag.evidence["payment_ids"] == [payment.pk for payment in earlier] + [flag.payment_id]
    assert flag.dedupe_key == f"attempts:{account.pk}:2025031010"


def test_attempts_spread_over_more_than_an_hour_raise_no_flag(frozen, plan):
    account = make_student()
    attempt(account, plan, minutes_ago=61)
    for n in range(4):
        attempt(account, plan, minutes_ago=40 - 10 * n)

    assert attempt_and_check(account, plan) == []


def test_the_attempts_limit_comes_from_settings(frozen, plan, settings):
    settings.FRAUD_MAX_ATTEMPTS_PER_HOUR = 2
    account = make_student()
    attempt(account, plan, minutes_ago=2)
    attempt(account, plan, minutes_ago=1)

    [flag] = attempt_and_check(account, plan)

    assert (flag.rule, flag.evidence["attempts"], flag.evidence["limit"]) == ("attempts", 3, 2)


# Too many cards in 24 hours


def test_three_cards_in_a_day_raise_no_flag(frozen, plan):
    account = make_student()

    raised = [attempt_and_check(account, plan, with_card=card(account), minutes_ago=m) for m in (600, 300, 10)]

    assert raised == [[]] * 3


def test_a_fourth_card_within_24_hours_raises_a_flag_naming_the_cards(frozen, plan):
    account = make_student()
    cards = [card(account, last4) for last4 in ("1111", "2222", "3333", "4444")]
    for with_card, minutes_ago in zip(cards[:3], (23 * 60, 300, 10), strict=True):
        attempt(account, plan, with_card=with_card, minutes_ago=minutes_ago)

    [flag] = attempt_and_check(account, plan, with_card=cards[3])

    assert flag.rule == "cards"
    assert flag.evidence["cards"] == 4
    assert flag.evidence["card_labels"] == ["Visa 1111", "Visa 2222", "Visa 3333", "Visa 4444"]
    assert flag.evidence["payment_method_ids"] == [with_card.pk for with_card in cards]
    assert flag.dedupe_key == f"cards:{account.pk}:20250310"


def test_the_same_card_many_times_is_one_card(frozen, plan):
    account = make_student()
    cards = [card(account) for _ in range(3)]
    for n in range(5):
        attempt(account, plan, with_card=cards[n % 3], minutes_ago=300 - n)

    assert flags_of(account, "cards") == []
    assert rules.fraud_rules_check(account=account) == []


def test_a_card_used_more_than_24_hours_ago_does_not_count(frozen, plan):
    account = make_student()
    for minutes_ago in (24 * 60 + 1, 300, 200):
        attempt(account, plan, with_card=card(account), minutes_ago=minutes_ago)

    assert attempt_and_check(account, plan, with_card=card(account)) == []


# A streak of declines


def test_two_declines_in_a_row_raise_no_flag(frozen, plan):
    account = make_student()

    raised = [attempt_and_check(account, plan, code="card_declined", minutes_ago=m) for m in (20, 10)]

    assert raised == [[], []]


def test_three_declines_in_a_row_raise_a_flag(frozen, plan):
    account = make_student()
    first = attempt(account, plan, code="card_declined", minutes_ago=20)
    second = attempt(account, plan, code="insufficient_funds", minutes_ago=10)

    [flag] = attempt_and_check(account, plan, code="card_declined")

    assert flag.rule == "declines"
    assert flag.evidence["declines_in_a_row"] == 3
    assert flag.evidence["failure_codes"] == ["card_declined", "insufficient_funds", "card_declined"]
    assert flag.evidence["payment_ids"] == [first.pk, second.pk, flag.payment_id]


def test_a_success_ends_a_streak_of_declines(frozen, plan):
    account = make_student()
    attempt(account, plan, code="card_declined", minutes_ago=30)
    attempt(account, plan, code="card_declined", minutes_ago=20)
    attempt(account, plan, status="succeeded", minutes_ago=15)
    attempt(account, plan, code="card_declined", minutes_ago=10)

    assert attempt_and_check(account, plan, code="card_declined") == []


def test_failures_that_are_not_the_banks_neither_count_nor_end_a_streak(frozen, plan):
    account = make_student()
    attempt(account, plan, code="card_declined", minutes_ago=300)
    attempt(account, plan, code="provider_unavailable", minutes_ago=250)
    attempt(account, plan, code="card_declined", minutes_ago=200)
    attempt(account, plan, code="not_charged", minutes_ago=150)

    assert attempt_and_check(account, plan, code="canceled", minutes_ago=100) == []
    [flag] = attempt_and_check(account, plan, code="card_declined")
    assert flag.evidence["declines_in_a_row"] == 3


# A first purchase far above the usual


def test_a_first_purchase_of_three_times_the_usual_raises_no_flag(frozen, plan):
    make_plan("Starter", minutes=300, price_cents=8000)
    make_plan("Intensive", minutes=1200, price_cents=28000)  # median package price: 150.00

    assert attempt_and_check(make_student(), plan, amount_cents=45000) == []


def test_a_first_purchase_above_three_times_the_usual_raises_a_flag(frozen, plan):
    make_plan("Starter", minutes=300, price_cents=8000)
    make_plan("Intensive", minutes=1200, price_cents=28000)
    account = make_student()

    [flag] = attempt_and_check(account, plan, amount_cents=45001)

    assert flag.rule == "first_purchase"
    assert flag.evidence == {
        "amount_cents": 45001,
        "currency": "EUR",
        "usual_cents": 15000,
        "usual_basis": "median price of the 3 packages on sale",
        "factor": "3",
        "payment_ids": [flag.payment_id],
    }
    assert flag.dedupe_key == f"first_purchase:{account.pk}:first"


def test_with_enough_first_purchases_the_usual_is_what_students_really_buy_first(frozen, plan):
    starter = make_plan("Starter", minutes=300, price_cents=8000)
    for _ in range(rules.BASELINE_MIN_SAMPLE):
        student = make_student()
        attempt(student, starter, status="succeeded", minutes_ago=60 * 24)
        attempt(student, plan, status="succeeded", minutes_ago=60)  # not a first purchase: not counted

    usual, basis = rules.usual_first_purchase(currency="EUR")
    [flag] = attempt_and_check(make_student(), plan, amount_cents=24001)

    assert (usual, basis) == (8000, "median first purchase of 20 students in the last 90 days")
    assert flag.evidence["usual_cents"] == 8000


def test_a_large_purchase_after_a_first_success_is_not_a_first_purchase(frozen, plan):
    account = make_student()
    attempt(account, plan, status="succeeded", minutes_ago=60 * 24 * 30)

    assert attempt_and_check(account, plan, amount_cents=90000) == []


def test_every_attempt_before_the_first_success_is_a_first_purchase(frozen, plan):
    account = make_student()
    attempt(account, plan, code="card_declined", minutes_ago=10)

    [flag] = attempt_and_check(account, plan, amount_cents=90000, code="card_declined")

    assert flag.rule == "first_purchase"


# One flag per rule, subject and period


def test_checking_the_same_attempt_again_raises_no_second_flag(frozen, plan):
    account = make_student()
    for n in range(6):
        payment = attempt(account, plan, minutes_ago=30 - n)

    first = rules.fraud_rules_check(account=account, payment=payment)
    second = rules.fraud_rules_check(account=account, payment=payment)

    assert len(first) == 1
    assert second == []
    assert FraudFlag.objects.count() == 1


def test_more_attempts_in_the_same_hour_raise_no_second_flag(frozen, plan):
    account = make_student()
    raised = [attempt_and_check(account, plan, minutes_ago=29 - n) for n in range(9)]

    assert [len(flags) for flags in raised] == [0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert FraudFlag.objects.count() == 1


def test_a_cleared_flag_is_not_raised_again_for_the_same_period(frozen, plan, staff_user):
    account = make_student()
    for n in range(6):
        attempt(account, plan, minutes_ago=30 - n)
    [flag] = rules.fraud_rules_check(account=account)
    review.fraud_flag_clear(flag=flag, actor=staff_user, reason="A parent retrying a card")

    assert attempt_and_check(account, plan) == []


def test_the_same_rule_in_the_next_hour_raises_a_new_flag(plan):
    account = make_student()
    with time_machine.travel(NOW, tick=False):
        for n in range(6):
            attempt(account, plan, minutes_ago=5 - n)
        [first] = rules.fraud_rules_check(account=account)
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        for n in range(6):
            attempt(account, plan, minutes_ago=5 - n)
        [second] = rules.fraud_rules_check(account=account)

    assert (first.dedupe_key, second.dedupe_key) == (
        f"attempts:{account.pk}:2025031010",
        f"attempts:{account.pk}:2025031011",
    )


# The periodic scan


def suspicious_story(plan, accounts=1):
    """Accounts that each break one rule, plus a quiet one; each attempt checked as it happens.
    Returns what the checks raised."""
    raised = []
    for _ in range(accounts):
        many = make_student()
        raised += [flag for n in range(6) for flag in attempt_and_check(many, plan, minutes_ago=50 - 5 * n)]
        cards = make_student()
        for minutes_ago in (600, 300, 100, 10):
            raised += attempt_and_check(cards, plan, with_card=card(cards), status="succeeded", minutes_ago=minutes_ago)
        declines = make_student()
        for minutes_ago in (30, 20, 10):
            raised += attempt_and_check(declines, plan, code="card_declined", minutes_ago=minutes_ago)
        big = make_student()
        raised += attempt_and_check(big, plan, amount_cents=45001, status="processing", minutes_ago=3)
        quiet = make_student()
        attempt_and_check(quiet, plan, status="succeeded", minutes_ago=40)
        attempt_and_check(quiet, plan, code="card_declined", minutes_ago=20)
    return raised


def described(flags):
    return sorted(
        (flag.rule, flag.account_id, flag.payment_id, flag.dedupe_key, flag.evidence, flag.status) for flag in flags
    )


def test_the_scan_finds_what_the_checks_after_each_attempt_found(frozen, plan):
    by_checks = described(suspicious_story(plan))
    FraudFlag.objects.all().delete()

    by_scan = described(rules.fraud_scan())

    assert [row[0] for row in by_checks] == ["attempts", "cards", "declines", "first_purchase"]
    assert by_scan == by_checks
    assert described(FraudFlag.objects.all()) == by_checks


def test_the_scan_raises_nothing_the_checks_already_raised(frozen, plan):
    suspicious_story(plan)

    assert rules.fraud_scan() == []
    assert FraudFlag.objects.count() == 4


def test_the_scan_finds_a_decline_settled_after_its_check(frozen, plan):
    """A payment whose answer came later (a webhook, a refresh): only the scan sees it as declined."""
    account = make_student()
    attempt(account, plan, code="card_declined", minutes_ago=20)
    attempt(account, plan, code="card_declined", minutes_ago=10)
    late = attempt(account, plan, status="processing", minutes_ago=5)
    assert rules.fraud_rules_check(account=account, payment=late) == []
    Payment.objects.filter(pk=late.pk).update(status="failed", failure_code="card_declined", settled_at=timezone.now())

    [flag] = rules.fraud_scan()

    assert (flag.rule, flag.payment_id) == ("declines", late.pk)


def test_the_scan_leaves_activity_older_than_its_lookback_alone(frozen, plan, settings):
    account = make_student()
    for n in range(6):
        attempt(account, plan, minutes_ago=settings.FRAUD_SCAN_LOOKBACK_MINUTES + 50 - n)

    assert rules.fraud_scan() == []


def test_the_scans_queries_do_not_grow_with_the_number_of_accounts(frozen, plan, django_assert_max_num_queries):
    suspicious_story(plan, accounts=1)
    FraudFlag.objects.all().delete()
    with CaptureQueriesContext(connection) as few:
        assert len(rules.fraud_scan()) == 4

    suspicious_story(plan, accounts=10)
    FraudFlag.objects.all().delete()
    # Seven for the payment rules, one for the card setups rule (no account over its limit here).
    with CaptureQueriesContext(connection) as many, django_assert_max_num_queries(8):
        assert len(rules.fraud_scan()) == 44

    assert len(many.captured_queries) == len(few.captured_queries)


# After each attempt, through payment_start (real localstripe)


def buy(account, plan):
    token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
    return payments.payment_start(account=account, token=token)


def test_payment_start_runs_the_rules_after_each_attempt(localstripe, plan):
    account = make_student()
    add_card(account, localstripe, "4000000000000341")  # attaches, then declines every charge

    outcomes = [buy(account, plan) for _ in range(3)]

    assert [payment.status for payment in outcomes] == ["failed"] * 3
    [flag] = FraudFlag.objects.all()
    assert (flag.rule, flag.payment) == ("declines", outcomes[-1])
    assert flag.evidence["payment_ids"] == [payment.pk for payment in outcomes]


def test_a_failing_rule_never_fails_the_payment(localstripe, plan, settings, caplog):
    settings.FRAUD_MAX_ATTEMPTS_PER_HOUR = None  # a broken configuration: the check raises TypeError
    account = make_student()
    add_card(account, localstripe)

    payment = buy(account, plan)

    assert payment.status == "succeeded"
    account.refresh_from_db()
    assert account.balance_minutes == 600
    assert "The fraud rules could not check payment" in caplog.text
    assert not FraudFlag.objects.exists()


def test_a_blocked_account_cannot_start_a_payment_and_an_unblocked_one_can(localstripe, plan, staff_user):
    account = make_student()
    add_card(account, localstripe)
    blocks.account_block(account=account, actor=staff_user, reason="Confirmed card testing")

    with pytest.raises(AccountBlocked, match="Purchases are paused on your account"):
        buy(account, plan)
    assert not Payment.objects.exists()
    assert localstripe.payment_intents() == []

    blocks.account_unblock(account=account, actor=staff_user, reason="Parent called; cards verified")
    assert buy(account, plan).status == "succeeded"


# Stripe's early fraud warnings


def test_an_early_fraud_warning_is_a_radar_flag_with_its_evidence(frozen, plan):
    payment = attempt(make_student(), plan, status="succeeded")
    warning = {"id": "issfr_123", "fraud_type": "made_with_stolen_card", "actionable": True, "charge": "ch_1"}

    rules.fraud_flag_raise(payment=payment, warning_object=warning)
    flag = rules.fraud_flag_raise(payment=payment, warning_object=warning)

    assert FraudFlag.objects.count() == 1
    assert (flag.rule, flag.dedupe_key, flag.fraud_type) == ("radar", "radar:issfr_123", "made_with_stolen_card")
    assert flag.evidence["payment_ids"] == [payment.pk]
