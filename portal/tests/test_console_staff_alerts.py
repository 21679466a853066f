"""The console's bell, inbox and alert email settings; and that staff and student alerts never
cross: a student's bell and inbox show student kinds only, the console staff kinds only, and
Support only the staff kinds of their role."""

import pytest
from django.urls import reverse

from alerts.models import EmailOptOut, Notification
from alerts.selectors import emailed_kinds
from alerts.staff import FINANCE_KINDS, SUPPORT_KINDS
from billing.tests.builders import make_console_user, make_student
from portal.tests.htmx import client_events

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
BELL = reverse("console:alert_bell")
INBOX = reverse("console:alerts")
MARK_READ = reverse("console:alerts_mark_read")
PREFERENCES = reverse("console:alert_preferences")
HTMX = {"HX-Request": "true", "HX-Target": "inbox"}


def alert(user, kind=Kind.STAFF_DISPUTE_OPENED, title="New dispute of €150.00 by payer@example.com", link=""):
    return Notification.objects.create(
        recipient=user,
        kind=kind,
        title=title,
        body="Evidence is due by 9 Dec 2026, 16:00.",
        link=link or "/console/disputes/1/",
        dedupe_key=f"{kind}:{user.pk}:{Notification.objects.count()}",
    )


def bell_count(response):
    text = response.content.decode()
    marker = 'data-testid="staff-unread-count">'
    return int(text.split(marker)[1].split("<")[0]) if marker in text else 0


class TestTheBell:
    def test_it_counts_the_unread_open_staff_alerts_in_few_queries(
        self, finance_client, finance_user, django_assert_max_num_queries
    ):
        alert(finance_user)
        alert(finance_user, kind=Kind.STAFF_PAYMENT_STUCK, title="Payment 7 is stuck in flight")
        alert(finance_user, kind=Kind.LOW_BALANCE, title="Only 1 h left")  # a student's kind: never here
        read = alert(finance_user, kind=Kind.STAFF_FRAUD_FLAG)
        Notification.objects.filter(pk=read.pk).update(read_at=read.created_at)
        alert(make_console_user("frank@example.com"))  # someone else's

        with django_assert_max_num_queries(8):  # session, user, the guard's checks, the count
            response = finance_client.get(BELL, headers={"HX-Request": "true"})

        assert bell_count(response) == 2
        assert 'hx-trigger="every 60s, alertsChanged from:body"' in response.content.decode()

    def test_support_are_not_counted_the_finance_only_kinds(self, support_client, support_user):
        alert(support_user, kind=Kind.STAFF_DISPUTE_OPENED)  # e.g. left from when they were in Finance
        alert(support_user, kind=Kind.STAFF_FRAUD_FLAG, title="New fraud flag on ana@example.com")

        assert bell_count(support_client.get(BELL)) == 1
        text = support_client.get(INBOX).content.decode()
        assert "New fraud flag on ana@example.com" in text and "New dispute" not in text

    def test_the_console_page_loads_the_bell_and_nav_has_refunds_of_its_own(self, finance_client):
        text = finance_client.get(reverse("console:refunds")).content.decode()

        assert f'hx-get="{BELL}" hx-trigger="load"' in text
        assert f'<a href="{reverse("console:refunds")}" aria-current="page">Refunds</a>' in text
        assert f'<a href="{reverse("console:payments")}">Payments</a>' in text
        assert f'<a href="{reverse("console:subscriptions")}">Subscriptions</a>' in text


class TestStudentsNeverSeeStaffAlerts:
    def test_a_student_bell_counts_student_kinds_only(self, student_client, student):
        alert(student.user, kind=Kind.LOW_BALANCE, title="Only 1 h left")
        alert(student.user, kind=Kind.STAFF_DISPUTE_OPENED)

        text = student_client.get(reverse("student:alert_bell")).content.decode()

        assert '<span class="bell-count" data-testid="unread-count">1</span>' in text

    def test_a_student_inbox_banner_and_mark_all_leave_staff_kinds_alone(self, student_client, student):
        staff_kind = alert(student.user, kind=Kind.STAFF_FRAUD_FLAG, title="New fraud flag")
        alert(student.user, kind=Kind.PAYMENT_FAILED, title="A payment failed")

        inbox = student_client.get(reverse("student:alerts")).content.decode()
        banner = student_client.get(reverse("student:alert_banner")).content.decode()
        student_client.post(reverse("student:alert_mark_all_read"))
        one = student_client.post(reverse("student:alert_mark_read", args=[staff_kind.pk]))

        assert "A payment failed" in inbox and "New fraud flag" not in inbox
        assert "New fraud flag" not in banner
        assert one.status_code == 404
        staff_kind.refresh_from_db()
        assert staff_kind.read_at is None

    def test_the_console_inbox_shows_no_student_kind(self, finance_client, finance_user):
        alert(finance_user, kind=Kind.PAYMENT_SUCCEEDED, title="10 h added")

        text = finance_client.get(INBOX).content.decode()

        assert "10 h added" not in text and "No alerts." in text


class TestTheInbox:
    def test_it_lists_the_alerts_with_links_that_name_their_subject(self, finance_client, finance_user):
        alert(finance_user, link="/console/disputes/42/")
        alert(
            finance_user, kind=Kind.STAFF_WEBHOOK_FAILED, title="Stripe events are failing", link="/console/webhooks/"
        )

        text = finance_client.get(INBOX).content.decode()

        assert "New dispute of €150.00 by payer@example.com" in text
        assert "Evidence is due by 9 Dec 2026, 16:00." in text
        assert '<a href="/console/disputes/42/" hx-boost="false">Open the dispute</a>' in text
        assert '<a href="/console/webhooks/" hx-boost="false">Open the failed events</a>' in text
        assert f'href="{PREFERENCES}"' in text

    def test_marking_one_read_swaps_the_inbox_and_tells_the_bell(self, finance_client, finance_user):
        first, second = alert(finance_user), alert(finance_user, kind=Kind.STAFF_EVIDENCE_DUE)

        response = finance_client.post(MARK_READ, {"alert": first.pk}, headers=HTMX)

        assert response.status_code == 200 and client_events(response) == {"alertsChanged"}
        assert 'id="inbox"' in response.content.decode() and "<html" not in response.content.decode()
        first.refresh_from_db()
        second.refresh_from_db()
        assert first.read_at and not second.read_at

    def test_marking_all_read_without_javascript_goes_back_to_the_inbox(self, finance_client, finance_user):
        alert(finance_user)
        alert(finance_user, kind=Kind.STAFF_PAYMENT_STUCK)
        others = alert(make_console_user("frank@example.com"))

        response = finance_client.post(MARK_READ)

        assert response.status_code == 302 and response["Location"] == INBOX
        assert not Notification.objects.filter(recipient=finance_user, read_at__isnull=True).exists()
        others.refresh_from_db()
        assert others.read_at is None

    def test_someone_elses_alert_is_not_found_and_stays_unread(self, finance_client):
        others = alert(make_console_user("frank@example.com"))

        assert finance_client.post(MARK_READ, {"alert": others.pk}).status_code == 404
        others.refresh_from_db()
        assert others.read_at is None

    @pytest.mark.parametrize("bad", ["abc", "-1", "0", "99999999999999999999999", "1.5"])
    def test_an_alert_id_that_is_not_one_is_not_found(self, finance_client, finance_user, bad):
        mine = alert(finance_user)

        assert finance_client.post(MARK_READ, {"alert": bad}).status_code == 404
        mine.refresh_from_db()
        assert mine.read_at is None

    def test_marking_read_refuses_get(self, finance_client):
        assert finance_client.get(MARK_READ).status_code == 405


class TestEmailSettings:
    def test_finance_are_offered_every_staff_kind_all_on_by_default(self, finance_client, finance_user):
        text = finance_client.get(PREFERENCES).content.decode()

        for kind in FINANCE_KINDS:
            assert f'value="{kind}"' in text
        assert text.count("checked") == len(FINANCE_KINDS)
        assert emailed_kinds(user=finance_user, offered_kinds=FINANCE_KINDS) == list(FINANCE_KINDS)

    def test_support_are_offered_only_the_kinds_they_act_on(self, support_client):
        text = support_client.get(PREFERENCES).content.decode()

        assert 'value="staff_webhook_failed"' in text and 'value="staff_fraud_flag"' in text
        assert "staff_dispute_opened" not in text and "staff_payment_stuck" not in text

    def test_turning_one_email_off_keeps_the_others(self, support_client, support_user):
        response = support_client.post(PREFERENCES, {"emailed": [Kind.STAFF_FRAUD_FLAG]}, follow=True)

        assert "Your email choices are saved." in response.content.decode()
        assert list(EmailOptOut.objects.filter(user=support_user).values_list("kind", flat=True)) == [
            Kind.STAFF_WEBHOOK_FAILED
        ]
        assert emailed_kinds(user=support_user, offered_kinds=SUPPORT_KINDS) == [Kind.STAFF_FRAUD_FLAG]

    def test_a_kind_not_offered_is_refused_and_nothing_changes(self, support_client, support_user):
        response = support_client.post(PREFERENCES, {"emailed": [Kind.STAFF_DISPUTE_OPENED]})

        assert response.status_code == 200
        assert "Select a valid choice." in response.content.decode()
        assert not EmailOptOut.objects.filter(user=support_user).exists()

    def test_a_student_settings_stay_a_student_matter(self, finance_client, finance_user):
        student = make_student()
        EmailOptOut.objects.create(user=student.user, kind=Kind.LOW_BALANCE)

        finance_client.post(PREFERENCES, {"emailed": []})

        assert set(EmailOptOut.objects.filter(user=finance_user).values_list("kind", flat=True)) == set(FINANCE_KINDS)
        assert EmailOptOut.objects.filter(user=student.user).count() == 1
