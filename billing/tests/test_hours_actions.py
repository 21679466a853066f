"""Staff actions on hours (billing.hours_actions): grant, extend, reopen and void, each through the
ledger, audited, refused with a clear message when it cannot be done, and taken once per form key."""

import secrets
from datetime import datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from alerts.models import Notification
from alerts.notifications import alerts_scan, session_record
from billing import hours_actions, ledger
from billing.audit import action_key_claim
from billing.errors import ActionAlreadyTaken, BillingError, LedgerError, VoidTooLate
from billing.hours_actions import (
    ExtendPreview,
    account_lots_extend,
    hours_grant,
    lot_extend,
    lots_extend_bulk,
    lots_extend_preview,
    usage_void,
)
from billing.models import ActionKey, AuditEntry, LedgerEntry, Lot, Payment, Receipt
from billing.reports import console_overview
from billing.tests.builders import credit, make_plan, make_staff, make_student, use

pytestmark = pytest.mark.django_db

Kind = LedgerEntry.Kind


@pytest.fixture
def staff():
    return make_staff("fiona.finance@example.com")


def key():
    return secrets.token_urlsafe(18)


def in_days(days):
    return timezone.now() + timedelta(days=days)


def books_balance(account):
    account.refresh_from_db()
    entries = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("minutes"))["total"] or 0
    lots = Lot.objects.filter(account=account).aggregate(total=Sum("minutes_remaining"))["total"] or 0
    return account.balance_minutes == entries == lots


def grant(account, staff, *, minutes=120, expires_at=None, reason="Apology for a cancelled session", **fields):
    return hours_grant(
        account=account,
        name=fields.pop("name", "Goodwill hours"),
        minutes=minutes,
        expires_at=expires_at or in_days(60),
        reason=reason,
        actor=staff,
        key=fields.pop("key", None) or key(),
        **fields,
    )


def expired_lot(account, minutes=300, *, days_ago=5):
    """A lot that expired `days_ago` days ago with `minutes` unused, its expiry booked by the job."""
    lot = credit(account, minutes, days_valid=30, bought_days_ago=30 + days_ago)
    ledger.lots_expire_due()
    lot.refresh_from_db()
    return lot


# Grant


def test_a_grant_adds_a_complimentary_lot_booked_as_a_grant(staff):
    account = make_student()
    expires_at = in_days(60)

    lot = grant(account, staff, minutes=75, expires_at=expires_at, ip_address="203.0.113.7")

    account.refresh_from_db()
    assert (lot.source, lot.price_cents, lot.minutes_remaining, lot.expires_at) == (
        Lot.Source.GRANT,
        0,
        75,
        expires_at,
    )
    assert account.balance_minutes == 75
    assert list(lot.ledger_entries.values_list("kind", "minutes", "actor", "reason")) == [
        (Kind.GRANT, 75, staff.pk, "Apology for a cancelled session")
    ]
    assert not Payment.objects.exists() and not Receipt.objects.exists()
    audit = AuditEntry.objects.get(action="hours.grant")
    assert (audit.actor, audit.account_id, audit.reason, audit.ip_address) == (
        staff,
        account.pk,
        "Apology for a cancelled session",
        "203.0.113.7",
    )
    assert audit.before == {"balance_minutes": 0}
    assert audit.after["balance_minutes"] == 75 and audit.after["minutes"] == 75


def test_a_grant_given_a_date_is_usable_through_that_local_day(staff):
    account = make_student()
    day = timezone.localdate() + timedelta(days=10)

    lot = grant(account, staff, expires_at=day)

    assert timezone.localtime(lot.expires_at).date() == day
    assert timezone.localtime(lot.expires_at + timedelta(seconds=1)).date() == day + timedelta(days=1)


def test_granted_hours_are_counted_apart_from_sales(staff):
    account = make_student()
    grant(account, staff, minutes=150)
    grant(account, staff, minutes=30)

    overview = console_overview()

    assert overview.revenue_30d_cents == 0
    assert (overview.grants_30d, overview.granted_minutes_30d) == (2, 180)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"minutes": 0}, "positive number of minutes"),
        ({"minutes": -30}, "positive number of minutes"),
        ({"expires_at": timezone.now() - timedelta(days=1)}, "in the future"),
        ({"reason": "   "}, "reason"),
        ({"name": ""}, "name"),
    ],
)
def test_a_grant_that_cannot_be_given_changes_nothing(staff, change, message):
    account = make_student()

    with pytest.raises(BillingError, match=message):
        grant(account, staff, **change)

    account.refresh_from_db()
    assert account.balance_minutes == 0
    assert not Lot.objects.exists() and not AuditEntry.objects.exists() and not ActionKey.objects.exists()


def test_a_grant_submitted_twice_with_one_key_is_given_once(staff):
    account = make_student()
    form_key = key()
    grant(account, staff, key=form_key)

    with pytest.raises(ActionAlreadyTaken, match="already done; nothing was changed again"):
        grant(account, staff, key=form_key)

    account.refresh_from_db()
    assert account.balance_minutes == 120
    assert Lot.objects.count() == 1 and AuditEntry.objects.count() == 1


def test_a_refused_action_leaves_its_key_free_for_the_corrected_form(staff):
    account = make_student()
    form_key = key()
    with pytest.raises(BillingError):
        grant(account, staff, minutes=0, key=form_key)

    grant(account, staff, minutes=60, key=form_key)

    account.refresh_from_db()
    assert account.balance_minutes == 60


@pytest.mark.django_db(transaction=True)
def test_a_key_is_claimed_only_inside_the_actions_transaction(staff):
    with pytest.raises(LedgerError, match="inside the action's transaction"):
        action_key_claim(key=key(), action="hours.grant", actor=staff)


def test_a_key_claimed_twice_in_one_transaction_leaves_it_usable(staff):
    form_key = key()
    with transaction.atomic():
        action_key_claim(key=form_key, action="hours.grant", actor=staff)
        with pytest.raises(ActionAlreadyTaken):
            action_key_claim(key=form_key, action="hours.grant", actor=staff)
        assert ActionKey.objects.filter(key=form_key).count() == 1  # the transaction still answers


# Extend one lot


def test_extending_a_usable_lot_moves_its_expiry_and_books_no_minutes(staff):
    account = make_student()
    lot = credit(account, 600, days_valid=30)
    old_expiry, new_expiry = lot.expires_at, in_days(90)

    lot = lot_extend(lot=lot, expires_at=new_expiry, reason="Student was ill", actor=staff, key=key())

    lot.refresh_from_db()
    assert lot.expires_at == new_expiry
    assert list(lot.ledger_entries.values_list("kind", flat=True)) == [Kind.CREDIT]
    audit = AuditEntry.objects.get(action="lot.extend")
    assert datetime.fromisoformat(audit.before["expires_at"]) == old_expiry
    assert datetime.fromisoformat(audit.after["expires_at"]) == new_expiry
    assert audit.reason == "Student was ill"


@pytest.mark.parametrize(
    ("new_expiry", "message"),
    [(lambda lot: lot.expires_at, "later than the current one"), (lambda lot: in_days(-1), "in the future")],
)
def test_an_extension_must_be_later_than_now_and_than_the_current_expiry(staff, new_expiry, message):
    account = make_student()
    lot = credit(account, 600, days_valid=30)

    with pytest.raises(BillingError, match=message):
        lot_extend(lot=lot, expires_at=new_expiry(lot), reason="Ill", actor=staff, key=key())

    assert Lot.objects.get(pk=lot.pk).expires_at == lot.expires_at
    assert not AuditEntry.objects.exists()


def test_an_extension_needs_a_reason(staff):
    lot = credit(make_student(), 600)

    with pytest.raises(BillingError, match="reason"):
        lot_extend(lot=lot, expires_at=in_days(200), reason="", actor=staff, key=key())


def test_an_expired_lot_within_the_window_is_reopened_through_the_ledger(staff):
    account = make_student()
    lot = expired_lot(account, 300, days_ago=5)
    expiry = lot.ledger_entries.get(kind=Kind.EXPIRY)
    new_expiry = in_days(30)

    lot_extend(lot=lot, expires_at=new_expiry, reason="Reopened after a complaint", actor=staff, key=key())

    lot.refresh_from_db()
    assert (lot.minutes_remaining, lot.expired_at, lot.expires_at) == (300, None, new_expiry)
    assert list(lot.ledger_entries.values_list("kind", "minutes")) == [
        (Kind.CREDIT, 300),
        (Kind.EXPIRY, -300),
        (Kind.EXPIRY_REVERSAL, 300),
    ]
    assert LedgerEntry.objects.filter(pk=expiry.pk).exists()  # the expiry stays in the ledger
    assert books_balance(account) and account.balance_minutes == 300
    audit = AuditEntry.objects.get(action="lot.reopen")
    assert audit.before["expired_at"] is not None and audit.before["minutes_remaining"] == 0
    assert datetime.fromisoformat(audit.after["expires_at"]) == new_expiry
    assert (audit.after["expired_at"], audit.after["minutes_remaining"]) == (None, 300)


def test_a_lot_past_its_date_that_the_expiry_job_has_not_reached_only_moves(staff):
    account = make_student()
    lot = credit(account, 300, days_valid=30, bought_days_ago=31)

    lot_extend(lot=lot, expires_at=in_days(10), reason="Reopened", actor=staff, key=key())

    lot.refresh_from_db()
    assert (lot.minutes_remaining, lot.expired_at) == (300, None)
    assert list(lot.ledger_entries.values_list("kind", flat=True)) == [Kind.CREDIT]


def test_a_lot_expired_longer_ago_than_the_window_is_not_reopened(staff, settings):
    settings.PORTAL_REOPEN_WINDOW_DAYS = 30
    account = make_student()
    lot = expired_lot(account, 300, days_ago=31)

    with pytest.raises(BillingError, match="more than 30 days ago"):
        lot_extend(lot=lot, expires_at=in_days(30), reason="Too late", actor=staff, key=key())

    lot.refresh_from_db()
    assert lot.expired_at is not None and lot.minutes_remaining == 0
    assert not lot.ledger_entries.filter(kind=Kind.EXPIRY_REVERSAL).exists()


def test_the_reopening_window_is_a_setting(staff, settings):
    settings.PORTAL_REOPEN_WINDOW_DAYS = 3
    lot = expired_lot(make_student(), 300, days_ago=5)

    with pytest.raises(BillingError, match="more than 3 days ago"):
        lot_extend(lot=lot, expires_at=in_days(30), reason="Too late", actor=staff, key=key())


def test_a_reopened_lot_expires_again_on_its_new_date(staff):
    account = make_student()
    lot = expired_lot(account, 300, days_ago=5)
    lot_extend(lot=lot, expires_at=in_days(10), reason="Reopened", actor=staff, key=key())
    use(account, 100)

    with time_machine.travel(in_days(11)):
        ledger.lots_expire_due()
        ledger.lots_expire_due()  # safe to run twice

    lot.refresh_from_db()
    assert lot.minutes_remaining == 0 and lot.expired_at is not None
    assert list(lot.ledger_entries.filter(kind=Kind.EXPIRY).values_list("minutes", flat=True)) == [-300, -200]
    assert books_balance(account) and account.balance_minutes == 0


def test_a_reopened_lot_can_be_refunded_and_adjusted_again(staff):
    account = make_student()
    lot = expired_lot(account, 300, days_ago=5)
    assert ledger.lot_unused_minutes(lot=lot) == 0

    lot_extend(lot=lot, expires_at=in_days(10), reason="Reopened", actor=staff, key=key())

    assert ledger.lot_unused_minutes(lot=lot) == 300
    ledger.lot_reverse(lot=lot, minutes=100, reason="Refund")
    assert books_balance(account) and account.balance_minutes == 200


def test_extending_a_lot_resolves_its_expiry_alerts_and_it_is_alerted_again_near_its_new_date(
    staff, django_capture_on_commit_callbacks
):
    account = make_student()
    lot = credit(account, 300, days_valid=30, bought_days_ago=25)
    alerts_scan()
    old_alert = Notification.objects.get(kind=Notification.Kind.LOT_EXPIRING_7D, subject_id=lot.pk)

    with django_capture_on_commit_callbacks(execute=True):
        lot_extend(lot=lot, expires_at=lot.expires_at + timedelta(days=30), reason="Ill", actor=staff, key=key())

    old_alert.refresh_from_db()
    assert old_alert.resolved_at is not None
    alerts_scan()
    assert Notification.objects.filter(kind=Notification.Kind.LOT_EXPIRING_7D, subject_id=lot.pk).count() == 1
    with time_machine.travel(in_days(30)):
        alerts_scan()
    alerts = Notification.objects.filter(kind=Notification.Kind.LOT_EXPIRING_7D, subject_id=lot.pk)
    assert [alert.resolved_at is None for alert in alerts.order_by("id")] == [False, True]


def test_reopening_a_lot_resolves_its_expired_alert_and_a_second_expiry_alerts_again(
    staff, django_capture_on_commit_callbacks
):
    account = make_student()
    lot = expired_lot(account, 300, days_ago=2)
    alerts_scan()
    expired_alerts = Notification.objects.filter(kind=Notification.Kind.LOT_EXPIRED, subject_id=lot.pk)
    assert expired_alerts.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        lot_extend(lot=lot, expires_at=in_days(3), reason="Reopened", actor=staff, key=key())

    assert expired_alerts.get().resolved_at is not None
    with time_machine.travel(in_days(4)):
        ledger.lots_expire_due()
        alerts_scan()
        alerts_scan()
    assert [alert.resolved_at is None for alert in expired_alerts.order_by("id")] == [False, True]


# Extend all of a student's lots


def test_all_usable_lots_of_a_student_move_the_same_number_of_days(staff):
    account = make_student()
    first, second = credit(account, 300, days_valid=30), credit(account, 200, days_valid=60)
    used_up = credit(account, 60, days_valid=90)
    use(account, 60)  # draws on the soonest-expiring lot, `first`
    expired = expired_lot(account, 100)
    before = {lot.pk: Lot.objects.get(pk=lot.pk).expires_at for lot in (first, second, used_up, expired)}
    ledger.lot_adjust(lot=used_up, minutes=-60, reason="Correction")

    moved = account_lots_extend(account=account, days=14, reason="School closed", actor=staff, key=key())

    assert {lot.pk for lot in moved} == {first.pk, second.pk}
    after = {lot.pk: lot.expires_at for lot in Lot.objects.filter(pk__in=before)}
    for lot in (first, second):
        local_before, local_after = timezone.localtime(before[lot.pk]), timezone.localtime(after[lot.pk])
        assert local_after.date() == local_before.date() + timedelta(days=14)
        assert local_after.time() == local_before.time()  # the same wall-clock time, across a DST change too
    assert after[used_up.pk] == before[used_up.pk] and after[expired.pk] == before[expired.pk]
    audit = AuditEntry.objects.get(action="lots.extend")
    assert audit.account_id == account.pk and set(audit.after["expires_at"]) == {str(first.pk), str(second.pk)}


@pytest.mark.parametrize("days", [0, -3, 3651])
def test_an_extension_by_days_must_be_between_1_and_3650_days(staff, days):
    account = make_student()
    lot = credit(account, 300)

    with pytest.raises(BillingError, match="1 to 3650 days"):
        account_lots_extend(account=account, days=days, reason="School closed", actor=staff, key=key())

    assert Lot.objects.get(pk=lot.pk).expires_at == lot.expires_at


def test_a_student_without_usable_lots_has_nothing_to_extend(staff):
    account = make_student()
    expired_lot(account)

    with pytest.raises(BillingError, match="no usable lots"):
        account_lots_extend(account=account, days=7, reason="School closed", actor=staff, key=key())


# Extend in bulk


def lot_expiring(account, plan, minutes, days_from_now):
    return ledger.lot_credit(
        account=account, name=plan.name, minutes=minutes, plan=plan, expires_at=in_days(days_from_now)
    )


def test_the_bulk_preview_counts_the_usable_lots_of_the_plan_expiring_in_the_date_range():
    plan, other_plan = make_plan("Standard"), make_plan("Intensive")
    anna, ben = make_student(), make_student()
    lot_expiring(anna, plan, 300, 5)
    lot_expiring(anna, plan, 200, 9)
    lot_expiring(ben, plan, 100, 10)  # on the last day of the range: included
    lot_expiring(ben, plan, 100, 12)  # after the range
    lot_expiring(ben, other_plan, 100, 6)  # another plan
    used_up = lot_expiring(ben, plan, 50, 6)
    ledger.lot_adjust(lot=used_up, minutes=-50, reason="Correction")
    today = timezone.localdate()

    preview = lots_extend_preview(plan=plan, expires_from=today, expires_to=today + timedelta(days=10))

    assert preview == ExtendPreview(lots=3, minutes=600, accounts=2)


def test_a_bulk_extension_moves_the_previewed_lots_with_one_audit_entry_per_student(staff):
    plan = make_plan()
    anna, ben = make_student(), make_student()
    lots = [lot_expiring(anna, plan, 300, 5), lot_expiring(anna, plan, 200, 9), lot_expiring(ben, plan, 100, 7)]
    outside = lot_expiring(ben, plan, 100, 40)
    today = timezone.localdate()
    selection = {"plan": plan, "expires_from": today, "expires_to": today + timedelta(days=10)}

    moved = lots_extend_bulk(
        **selection, days=30, reason="Summer break", actor=staff, key=key(), expected_lots=3, ip_address="203.0.113.7"
    )

    assert moved == ExtendPreview(lots=3, minutes=600, accounts=2)
    for lot in lots:
        new_expiry = Lot.objects.get(pk=lot.pk).expires_at
        assert timezone.localtime(new_expiry).date() == timezone.localtime(lot.expires_at).date() + timedelta(days=30)
    assert Lot.objects.get(pk=outside.pk).expires_at == outside.expires_at
    assert sorted(AuditEntry.objects.filter(action="lots.extend").values_list("account_id", flat=True)) == sorted(
        [anna.pk, ben.pk]
    )
    assert lots_extend_preview(**selection).lots == 0


def test_a_bulk_extension_whose_selection_changed_since_the_preview_changes_nothing(staff):
    plan = make_plan()
    account = make_student()
    lot = lot_expiring(account, plan, 300, 5)
    today = timezone.localdate()
    selection = {"plan": plan, "expires_from": today, "expires_to": today + timedelta(days=10)}
    assert lots_extend_preview(**selection).lots == 1
    lot_expiring(make_student(), plan, 100, 6)  # a purchase meanwhile

    with pytest.raises(BillingError, match="changed since the preview: it now holds 2 lots, not 1"):
        lots_extend_bulk(**selection, days=30, reason="Summer break", actor=staff, key=key(), expected_lots=1)

    assert Lot.objects.get(pk=lot.pk).expires_at == lot.expires_at
    assert not AuditEntry.objects.exists() and not ActionKey.objects.exists()


def test_a_bulk_range_must_not_end_before_it_starts(staff):
    today = timezone.localdate()

    with pytest.raises(BillingError, match="must not be after"):
        lots_extend_preview(plan=make_plan(), expires_from=today, expires_to=today - timedelta(days=1))


def test_a_bulk_extension_submitted_twice_moves_the_lots_once(staff):
    plan = make_plan()
    lot = lot_expiring(make_student(), plan, 300, 5)
    today = timezone.localdate()
    selection = {"plan": plan, "expires_from": today, "expires_to": today + timedelta(days=10)}
    form_key = key()
    lots_extend_bulk(**selection, days=30, reason="Summer break", actor=staff, key=form_key, expected_lots=1)

    with pytest.raises(ActionAlreadyTaken):
        lots_extend_bulk(**selection, days=30, reason="Summer break", actor=staff, key=form_key, expected_lots=0)

    assert Lot.objects.get(pk=lot.pk).expires_at == lot.expires_at + timedelta(days=30)


# Void a session


def test_a_voided_session_gives_its_minutes_back_to_its_lots_and_stays_marked(staff):
    account = make_student()
    first, second = credit(account, 60, days_valid=30), credit(account, 300, days_valid=60)
    session = use(account, 90)

    usage_void(usage=session, reason="Recorded twice", actor=staff, key=key(), late_allowed=False)

    session.refresh_from_db()
    assert (session.voided_by, session.void_reason) == (staff, "Recorded twice")
    assert session.voided_at is not None
    assert sorted(session.ledger_entries.values_list("kind", "lot_id", "minutes")) == sorted(
        [
            (Kind.USAGE, first.pk, -60),
            (Kind.USAGE, second.pk, -30),
            (Kind.VOID, first.pk, 60),
            (Kind.VOID, second.pk, 30),
        ]
    )
    assert books_balance(account) and account.balance_minutes == 360
    audit = AuditEntry.objects.get(action="session.void")
    assert audit.before == {"voided": False, "balance_minutes": 270}
    assert audit.after["voided"] is True and audit.after["balance_minutes"] == 360


def test_a_voided_sessions_share_of_a_lot_expired_since_comes_back_in_a_restored_lot(staff, settings):
    settings.PORTAL_REOPEN_WINDOW_DAYS = 30
    account = make_student()
    soon = credit(account, 60, days_valid=30, bought_days_ago=29, name="Starter")
    later = credit(account, 300, days_valid=90)
    session = use(account, 90)
    with time_machine.travel(in_days(2), tick=False):
        ledger.lots_expire_due()

        usage_void(usage=session, reason="Tutor did not come", actor=staff, key=key(), late_allowed=True)

        restored = Lot.objects.get(source=Lot.Source.RESTORED)
        now = timezone.now()
    assert (restored.name, restored.minutes_remaining, restored.price_cents) == ("Starter (restored)", 60, 0)
    assert restored.expires_at == now + timedelta(days=30)
    assert list(restored.ledger_entries.values_list("kind", "minutes", "usage")) == [(Kind.VOID, 60, session.pk)]
    assert Lot.objects.get(pk=soon.pk).minutes_remaining == 0
    assert Lot.objects.get(pk=later.pk).minutes_remaining == 300
    assert books_balance(account) and account.balance_minutes == 360


def test_a_session_already_voided_is_not_voided_again(staff):
    account = make_student()
    credit(account, 300)
    session = use(account, 60)
    usage_void(usage=session, reason="Mistake", actor=staff, key=key(), late_allowed=True)

    with pytest.raises(BillingError, match="already voided"):
        usage_void(usage=session, reason="Mistake again", actor=staff, key=key(), late_allowed=True)

    assert books_balance(account) and account.balance_minutes == 300
    assert AuditEntry.objects.filter(action="session.void").count() == 1


def test_support_may_void_only_within_a_day_of_recording_and_finance_later(staff):
    account = make_student()
    credit(account, 300)
    session = use(account, 60)

    with time_machine.travel(timezone.now() + hours_actions.SUPPORT_VOID_WINDOW + timedelta(minutes=1)):
        with pytest.raises(VoidTooLate, match="only Finance"):
            usage_void(usage=session, reason="Mistake", actor=staff, key=key(), late_allowed=False)
        assert books_balance(account) and account.balance_minutes == 240

        usage_void(usage=session, reason="Mistake", actor=staff, key=key(), late_allowed=True)
    assert books_balance(account) and account.balance_minutes == 300


def test_a_void_needs_a_reason(staff):
    account = make_student()
    credit(account, 300)
    session = use(account, 60)

    with pytest.raises(BillingError, match="reason"):
        usage_void(usage=session, reason=" ", actor=staff, key=key(), late_allowed=True)

    session.refresh_from_db()
    assert session.voided_at is None


def test_a_void_submitted_twice_with_one_key_says_it_was_done(staff):
    account = make_student()
    credit(account, 300)
    session = use(account, 60)
    form_key = key()
    usage_void(usage=session, reason="Mistake", actor=staff, key=form_key, late_allowed=True)

    with pytest.raises(ActionAlreadyTaken):
        usage_void(usage=session, reason="Mistake", actor=staff, key=form_key, late_allowed=True)


def test_a_purchase_with_a_voided_session_can_be_taken_back_in_full(staff):
    account = make_student()
    lot = credit(account, 300)
    usage_void(usage=use(account, 60), reason="Mistake", actor=staff, key=key(), late_allowed=True)

    assert ledger.lot_unused_minutes(lot=lot) == 300


# The console's other forms take the same one-time key


def test_a_session_form_submitted_twice_records_once(staff):
    account = make_student()
    credit(account, 300)
    form_key = key()
    fields = {"minutes": 50, "occurred_at": timezone.now(), "tutor": "T", "subject": "S", "recorded_by": staff}
    session_record(account=account, key=form_key, **fields)

    with pytest.raises(ActionAlreadyTaken):
        session_record(account=account, key=form_key, **fields)

    account.refresh_from_db()
    assert account.balance_minutes == 250 and account.usages.count() == 1


def test_an_adjustment_submitted_twice_adjusts_once(staff):
    account = make_student()
    lot = credit(account, 300)
    form_key = key()
    ledger.lot_adjust_by_staff(lot=lot, minutes=-20, reason="Correction", actor=staff, key=form_key)

    with pytest.raises(ActionAlreadyTaken):
        ledger.lot_adjust_by_staff(lot=lot, minutes=-20, reason="Correction", actor=staff, key=form_key)

    account.refresh_from_db()
    assert account.balance_minutes == 280
