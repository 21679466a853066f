"""Staff actions on a student's hours in the console, as staff use them: grant (Finance), extend or
reopen a package, every usable package of a student, or many in bulk after a preview (Finance), void
a session (Support within a day, Finance at any time), and the low-balance reminder level (Support
too). Each form is sent twice with its one-time key to prove it acts once; bad input is answered in
words and changes nothing. Who may open each route at all is walked in test_console_access.py."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import ledger
from billing.errors import ActionAlreadyTaken
from billing.models import AuditEntry, LedgerEntry, Lot, Payment, Receipt, Usage
from billing.tests.builders import credit, make_plan, make_student, use

pytestmark = pytest.mark.django_db

ALREADY_DONE = ActionAlreadyTaken.MESSAGE


def text(response):
    return response.content.decode()


def tomorrow_plus(days):
    return (timezone.localdate() + timedelta(days=days)).isoformat()


def key_in(response):
    found = re.search(r'name="key" value="([^"]+)"', text(response))
    assert found, "the form should carry a one-time key"
    return found.group(1)


def audit_actions():
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def follow_message(response, client):
    """The message shown on the page an action sends the browser back to."""
    assert response.status_code == 302, text(response)[:2000]
    return text(client.get(response["Location"]))


@pytest.fixture
def account():
    return make_student("learner@example.com")


@pytest.fixture
def lot(account):
    return credit(account, 600, days_valid=30, bought_days_ago=1)  # usable for a session an hour ago


def url(name, *args):
    return reverse(f"console:{name}", args=args)


class TestOneTimeKeys:
    def test_every_rendering_of_a_form_carries_a_fresh_key(self, finance_client, account):
        first = key_in(finance_client.get(url("hours_grant", account.pk)))
        second = key_in(finance_client.get(url("hours_grant", account.pk)))
        assert first != second and len(first) >= 24

    def test_a_form_shown_again_after_an_error_carries_a_new_key(self, finance_client, account):
        form = {"name": "Gift", "duration": "0", "expires_at": tomorrow_plus(30), "reason": "Welcome", "key": "k-1"}
        refused = finance_client.post(url("hours_grant", account.pk), form)
        assert "Enter a duration longer than zero." in text(refused)
        assert key_in(refused) != "k-1"

    def test_a_form_sent_without_its_key_does_nothing(self, support_client, account, lot):
        when = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        form = {"occurred_at": when, "duration": "1:00", "tutor": "T", "subject": "S"}
        response = support_client.post(url("session_create", account.pk), form)
        assert "This form was out of date, so nothing was done." in text(response)
        assert not Usage.objects.exists()

    def test_a_session_sent_twice_with_its_key_is_recorded_once(self, support_client, account, lot):
        when = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        form = {"occurred_at": when, "duration": "0:50", "tutor": "T", "subject": "S", "key": "session-1"}
        first = support_client.post(url("session_create", account.pk), form)
        assert "Session recorded." in follow_message(first, support_client)
        second = support_client.post(url("session_create", account.pk), form)
        assert ALREADY_DONE in follow_message(second, support_client)
        assert list(Usage.objects.values_list("minutes", flat=True)) == [50]
        lot.refresh_from_db()
        assert lot.minutes_remaining == 550

    def test_an_adjustment_sent_twice_with_its_key_is_made_once(self, finance_client, account, lot):
        form = {"lot": lot.pk, "hours": "-1:30", "reason": "Recorded twice.", "key": "adjust-1"}
        finance_client.post(url("hours_adjust", account.pk), form)
        second = finance_client.post(url("hours_adjust", account.pk), form)
        assert ALREADY_DONE in follow_message(second, finance_client)
        assert list(LedgerEntry.objects.filter(kind="adjustment").values_list("minutes", flat=True)) == [-90]

    def test_an_answer_already_done_is_shown_as_news_not_as_an_error(self, finance_client, account, lot):
        form = {"days": "10", "reason": "Tutor ill.", "key": "extend-1"}
        finance_client.post(url("account_lots_extend", account.pk), form)
        page = follow_message(finance_client.post(url("account_lots_extend", account.pk), form), finance_client)
        assert f'<p class="message message-info">{ALREADY_DONE}</p>' in page


class TestGrant:
    FORM = {"name": "Welcome gift", "duration": "2:30", "reason": "Sorry for the cancelled class.", "key": "grant-1"}

    def test_finance_grants_a_package_without_payment_or_receipt(self, finance_client, account):
        form = self.FORM | {"expires_at": tomorrow_plus(60)}
        page = follow_message(finance_client.post(url("hours_grant", account.pk), form), finance_client)
        lot = Lot.objects.get(account=account)
        assert (lot.source, lot.name, lot.minutes_remaining, lot.price_cents) == ("grant", "Welcome gift", 150, 0)
        assert not Payment.objects.filter(lot=lot).exists()
        assert timezone.localtime(lot.expires_at).date().isoformat() == tomorrow_plus(60)
        assert not Receipt.objects.exists()
        assert "2.5 h granted" in page and "Granted by your school" in page
        account.refresh_from_db()
        assert account.balance_minutes == 150
        assert audit_actions() == ["hours.grant"]

    def test_a_grant_sent_twice_gives_the_hours_once(self, finance_client, account):
        form = self.FORM | {"expires_at": tomorrow_plus(60)}
        finance_client.post(url("hours_grant", account.pk), form)
        second = finance_client.post(url("hours_grant", account.pk), form)
        assert ALREADY_DONE in follow_message(second, finance_client)
        assert Lot.objects.filter(account=account).count() == 1

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"duration": "0:00"}, "Enter a duration longer than zero."),
            ({"duration": "-1:00"}, "Enter a duration longer than zero."),
            ({"duration": "1.33 h"}, "Enter whole minutes"),
            ({"expires_at": tomorrow_plus(-1)}, "Choose an expiry date after today."),
            ({"expires_at": tomorrow_plus(-30)}, "Choose an expiry date after today."),
            ({"expires_at": "31/02/2027"}, "Enter a valid date."),
            ({"reason": "  "}, "This field is required."),
            ({"name": ""}, "This field is required."),
        ],
    )
    def test_bad_input_is_refused_in_words_and_grants_nothing(self, finance_client, account, change, message):
        form = self.FORM | {"expires_at": tomorrow_plus(60)} | change
        response = finance_client.post(url("hours_grant", account.pk), form)
        assert response.status_code == 200 and message in text(response)
        assert not Lot.objects.exists() and not AuditEntry.objects.exists()

    def test_support_is_refused(self, support_client, account):
        form = self.FORM | {"expires_at": tomorrow_plus(60)}
        assert support_client.get(url("hours_grant", account.pk)).status_code == 403
        assert support_client.post(url("hours_grant", account.pk), form).status_code == 403
        assert not Lot.objects.exists()


class TestExtendOneLot:
    def test_finance_moves_a_usable_package_to_a_later_date(self, finance_client, account, lot):
        form = {"expires_at": tomorrow_plus(90), "reason": "Tutor on leave.", "key": "lot-1"}
        page = follow_message(finance_client.post(url("lot_extend", account.pk, lot.pk), form), finance_client)
        lot.refresh_from_db()
        assert timezone.localtime(lot.expires_at).date().isoformat() == tomorrow_plus(90)
        assert "now expires on" in page
        assert audit_actions() == ["lot.extend"]

    def test_an_earlier_date_than_the_current_expiry_is_refused_in_words(self, finance_client, account, lot):
        before = lot.expires_at
        form = {"expires_at": tomorrow_plus(3), "reason": "Oops.", "key": "lot-2"}
        response = finance_client.post(url("lot_extend", account.pk, lot.pk), form)
        assert response.status_code == 200 and "notice-error" in text(response)
        lot.refresh_from_db()
        assert lot.expires_at == before and not AuditEntry.objects.exists()

    def test_a_date_in_the_past_is_refused_in_words(self, finance_client, account, lot):
        form = {"expires_at": tomorrow_plus(-5), "reason": "Oops.", "key": "lot-3"}
        response = finance_client.post(url("lot_extend", account.pk, lot.pk), form)
        assert "Choose an expiry date after today." in text(response)
        assert not AuditEntry.objects.exists()

    def test_a_package_of_another_student_is_not_found(self, finance_client, account, lot):
        stranger = make_student("stranger@example.com")
        form = {"expires_at": tomorrow_plus(90), "reason": "x", "key": "lot-4"}
        assert finance_client.get(url("lot_extend", stranger.pk, lot.pk)).status_code == 404
        assert finance_client.post(url("lot_extend", stranger.pk, lot.pk), form).status_code == 404
        assert not AuditEntry.objects.exists()

    def test_a_package_expired_within_the_window_is_reopened_through_the_ledger(self, finance_client, account):
        expired = credit(account, 600, days_valid=10, bought_days_ago=15)
        ledger.lots_expire_due()
        page = text(finance_client.get(url("student", account.pk)))
        assert f'aria-label="Reopen {expired.name} #{expired.pk}"' in page

        form = {"expires_at": tomorrow_plus(30), "reason": "Student was ill.", "key": "reopen-1"}
        finance_client.post(url("lot_extend", account.pk, expired.pk), form)
        expired.refresh_from_db()
        assert expired.expired_at is None and expired.minutes_remaining == 600
        assert LedgerEntry.objects.filter(lot=expired, kind="expiry_reversal").get().minutes == 600
        assert audit_actions() == ["lot.reopen"]

    def test_a_package_expired_too_long_ago_offers_no_reopening_and_is_refused(self, finance_client, account):
        old = credit(account, 600, days_valid=10, bought_days_ago=60)
        ledger.lots_expire_due()
        page = text(finance_client.get(url("student", account.pk)))
        assert "Too long expired to reopen" in page and f"Reopen {old.name} #{old.pk}" not in page

        form = {"expires_at": tomorrow_plus(30), "reason": "Late.", "key": "reopen-2"}
        response = finance_client.post(url("lot_extend", account.pk, old.pk), form)
        assert "can no longer be reopened" in text(response)
        old.refresh_from_db()
        assert old.expired_at is not None and old.minutes_remaining == 0

    def test_usable_packages_offer_extend(self, finance_client, account, lot):
        page = text(finance_client.get(url("student", account.pk)))
        assert f'aria-label="Extend {lot.name} #{lot.pk}"' in page

    def test_support_sees_no_extend_buttons_and_is_refused(self, support_client, account, lot):
        page = text(support_client.get(url("student", account.pk)))
        assert 'aria-label="Extend ' not in page
        assert "Extend all usable packages" not in page and "Grant hours" not in page
        form = {"expires_at": tomorrow_plus(90), "reason": "x", "key": "lot-5"}
        assert support_client.post(url("lot_extend", account.pk, lot.pk), form).status_code == 403


class TestExtendEveryLotOfAStudent:
    def test_every_usable_package_moves_the_same_number_of_days(self, finance_client, account, lot):
        other = credit(account, 300, days_valid=60)
        before = {lot.pk: lot.expires_at, other.pk: other.expires_at}
        form = {"days": "14", "reason": "Holiday closure.", "key": "all-1"}
        page = follow_message(finance_client.post(url("account_lots_extend", account.pk), form), finance_client)
        assert "2 package(s) extended." in page
        for moved in Lot.objects.filter(account=account):
            assert moved.expires_at == before[moved.pk] + timedelta(days=14)

    @pytest.mark.parametrize(
        ("days", "message"), [("0", "greater than or equal to 1"), ("3651", "less than or equal to 3650"), ("x", "")]
    )
    def test_a_bad_number_of_days_is_refused(self, finance_client, account, lot, days, message):
        before = lot.expires_at
        response = finance_client.post(url("account_lots_extend", account.pk), {"days": days, "reason": "x"})
        assert response.status_code == 200 and "form-error" in text(response) and message in text(response)
        lot.refresh_from_db()
        assert lot.expires_at == before


class TestBulkExtend:
    @pytest.fixture
    def plan(self):
        return make_plan("Standard")

    @pytest.fixture
    def selected(self, plan):
        lots = []
        for email in ("a@example.com", "b@example.com"):
            lots.append(credit(make_student(email), 600, days_valid=20, plan=plan))
        lots.append(credit(lots[0].account, 300, days_valid=25, plan=plan))
        credit(make_student("later@example.com"), 600, days_valid=200, plan=plan)  # outside the dates
        credit(make_student("other-plan@example.com"), 600, days_valid=20)  # another plan
        return lots

    def form(self, plan, **change):
        return {
            "plan": plan.pk,
            "expires_from": tomorrow_plus(10),
            "expires_to": tomorrow_plus(30),
            "days": "30",
            "reason": "School closed in August.",
            "key": "bulk-form",  # the key every rendering of the form carries
        } | change

    def test_the_preview_counts_lots_students_and_hours_and_changes_nothing(self, finance_client, plan, selected):
        response = finance_client.post(url("lots_extend"), self.form(plan), HTTP_HX_REQUEST="true")
        body = text(response)
        assert "3 packages of 2 students, with 25 h unused, will expire 30 days later." in body
        assert 'name="expected_lots" value="3"' in body and "Extend 3 packages" in body
        assert not AuditEntry.objects.exists()

    def test_the_confirmation_moves_exactly_the_previewed_lots(self, finance_client, plan, selected):
        preview = finance_client.post(url("lots_extend"), self.form(plan))
        before = {lot.pk: lot.expires_at for lot in Lot.objects.all()}
        confirm = self.form(plan, confirm="1", expected_lots="3", key=key_in(preview))
        page = follow_message(finance_client.post(url("lots_extend"), confirm), finance_client)
        assert "3 packages of 2 students extended (25 h unused)." in page
        moved = {lot.pk for lot in Lot.objects.all() if lot.expires_at != before[lot.pk]}
        assert moved == {lot.pk for lot in selected}
        assert audit_actions() == ["lots.extend", "lots.extend"]  # one entry per student

    def test_a_selection_that_changed_since_the_preview_is_refused(self, finance_client, plan, selected):
        preview = finance_client.post(url("lots_extend"), self.form(plan))
        use(selected[1].account, 600)  # one lot used up between preview and confirmation
        confirm = self.form(plan, confirm="1", expected_lots="3", key=key_in(preview))
        response = finance_client.post(url("lots_extend"), confirm)
        assert "The selection changed since the preview" in text(response)
        assert not AuditEntry.objects.exists()

    def test_the_confirmation_sent_twice_moves_the_lots_once(self, finance_client, plan, selected):
        confirm = self.form(plan, confirm="1", expected_lots="3", key="bulk-1")
        finance_client.post(url("lots_extend"), confirm)
        expiries = sorted(Lot.objects.values_list("expires_at", flat=True))
        second = finance_client.post(url("lots_extend"), confirm)
        assert ALREADY_DONE in follow_message(second, finance_client)
        assert sorted(Lot.objects.values_list("expires_at", flat=True)) == expiries

    def test_an_empty_selection_says_so_and_offers_no_confirmation(self, finance_client, plan, selected):
        body = text(
            finance_client.post(
                url("lots_extend"), self.form(plan, expires_from=tomorrow_plus(300), expires_to=tomorrow_plus(310))
            )
        )
        assert "there is nothing to extend" in body and "Extend 0" not in body

    def test_dates_in_the_wrong_order_are_refused(self, finance_client, plan, selected):
        body = text(finance_client.post(url("lots_extend"), self.form(plan, expires_to=tomorrow_plus(1))))
        assert "Choose an end date on or after the start date." in body

    def test_support_cannot_open_it(self, support_client, plan):
        assert support_client.get(url("lots_extend")).status_code == 403


class TestVoid:
    @pytest.fixture
    def session(self, account, lot):
        return use(account, 90)

    def age(self, session, hours):
        Usage.objects.filter(pk=session.pk).update(recorded_at=timezone.now() - timedelta(hours=hours))

    def test_support_voids_a_session_recorded_today(self, support_client, account, lot, session):
        form = {"reason": "Recorded for the wrong student.", "key": "void-1"}
        page = follow_message(support_client.post(url("usage_void", account.pk, session.pk), form), support_client)
        assert "Session voided." in page
        session.refresh_from_db()
        lot.refresh_from_db()
        assert session.voided_at is not None and session.void_reason == "Recorded for the wrong student."
        assert lot.minutes_remaining == 600
        assert audit_actions() == ["session.void"]

    def test_a_void_sent_twice_gives_the_minutes_back_once(self, support_client, account, lot, session):
        form = {"reason": "Wrong student.", "key": "void-2"}
        support_client.post(url("usage_void", account.pk, session.pk), form)
        second = support_client.post(url("usage_void", account.pk, session.pk), form)
        assert ALREADY_DONE in follow_message(second, support_client)
        assert LedgerEntry.objects.filter(kind="void").count() == 1

    def test_support_is_refused_a_session_recorded_more_than_a_day_ago(self, support_client, account, session):
        self.age(session, 25)
        refused = support_client.get(url("usage_void", account.pk, session.pk))
        assert refused.status_code == 403 and "only Finance can void it now" in text(refused)
        form = {"reason": "Too late.", "key": "void-3"}
        assert support_client.post(url("usage_void", account.pk, session.pk), form).status_code == 403
        session.refresh_from_db()
        assert session.voided_at is None

    def test_finance_voids_a_session_of_any_age(self, finance_client, account, session):
        self.age(session, 24 * 40)
        form = {"reason": "Tutor never came.", "key": "void-4"}
        finance_client.post(url("usage_void", account.pk, session.pk), form)
        session.refresh_from_db()
        assert session.voided_at is not None

    def test_a_session_already_voided_is_refused_in_words(self, support_client, account, session):
        support_client.post(url("usage_void", account.pk, session.pk), {"reason": "Once.", "key": "void-5"})
        response = support_client.post(url("usage_void", account.pk, session.pk), {"reason": "Twice.", "key": "v-6"})
        assert response.status_code == 200 and "notice-error" in text(response)
        assert LedgerEntry.objects.filter(kind="void").count() == 1

    def test_an_empty_reason_is_refused(self, support_client, account, session):
        response = support_client.post(url("usage_void", account.pk, session.pk), {"reason": "", "key": "void-7"})
        assert "This field is required." in text(response)
        session.refresh_from_db()
        assert session.voided_at is None

    def test_a_session_of_another_student_is_not_found(self, support_client, session):
        stranger = make_student("stranger@example.com")
        assert support_client.get(url("usage_void", stranger.pk, session.pk)).status_code == 404

    def test_the_sessions_table_offers_void_where_the_staff_member_may(self, support_client, account, lot):
        today, old, voided = use(account, 30), use(account, 40), use(account, 50)
        self.age(old, 30)
        support_client.post(url("usage_void", account.pk, voided.pk), {"reason": "Mistake.", "key": "void-8"})
        page = text(support_client.get(url("student", account.pk)))
        assert page.count("Void the session of") == 1
        assert url("usage_void", account.pk, today.pk) in page
        assert url("usage_void", account.pk, old.pk) not in page
        assert url("usage_void", account.pk, voided.pk) not in page

    def test_finance_sees_void_on_old_sessions_too(self, finance_client, account, lot):
        old = use(account, 40)
        self.age(old, 30)
        assert url("usage_void", account.pk, old.pk) in text(finance_client.get(url("student", account.pk)))


class TestLowBalanceLevel:
    def test_support_sets_the_level_in_hours_and_minutes(self, support_client, account):
        form = {"minutes": "1:30", "reason": "Asked by phone."}
        page = follow_message(support_client.post(url("low_balance_level", account.pk), form), support_client)
        account.refresh_from_db()
        assert account.low_balance_threshold_minutes == 90
        assert "Low-balance reminder at 1.5 h" in page
        assert audit_actions() == ["account.low_balance"]

    def test_zero_turns_the_reminder_off(self, support_client, account):
        support_client.post(url("low_balance_level", account.pk), {"minutes": "0", "reason": "Does not want it."})
        account.refresh_from_db()
        assert account.low_balance_threshold_minutes == 0
        assert "Low-balance reminder off" in text(support_client.get(url("student", account.pk)))

    def test_the_form_shows_the_current_level(self, support_client, account):
        account.low_balance_threshold_minutes = 150
        account.save()
        assert 'value="2:30"' in text(support_client.get(url("low_balance_level", account.pk)))

    @pytest.mark.parametrize(("minutes", "message"), [("-1:00", "without a minus sign"), ("201:00", "at most 200:00")])
    def test_a_bad_level_is_refused(self, support_client, account, minutes, message):
        before = account.low_balance_threshold_minutes
        response = support_client.post(url("low_balance_level", account.pk), {"minutes": minutes, "reason": "x"})
        assert message in text(response)
        account.refresh_from_db()
        assert account.low_balance_threshold_minutes == before
