"""Staff alerts (alerts.staff): each rule once per recipient and subject, the right people per role,
resolved once over, run by the periodic scan and right after a webhook event, and emailed."""

import itertools
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import tasks
from alerts.models import STAFF_KINDS, Notification
from alerts.notifications import email_preferences_save, emails_send_due
from alerts.staff import SUPPORT_KINDS, staff_alerts_scan, staff_kinds_for
from billing import samples
from billing.models import Dispute, FraudFlag, Payment, WebhookEvent
from billing.tests.builders import (
    credit,
    make_console_user,
    make_paid_payment,
    make_staff,
    make_student,
    payment_row,
)
from billing.tests.webhook_delivery import deliver

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
_numbers = itertools.count(1)


@pytest.fixture
def team(db):
    """Two Finance members, one Support member, and people who get no staff alert: staff without a
    console role, a Finance member who left (inactive), and a student."""
    gone = make_console_user("gone@example.com", role="Finance")
    gone.is_active = False
    gone.save()
    make_staff("intern@example.com")
    make_student("ana@example.com")
    return {
        "finance": [make_console_user("fiona@example.com"), make_console_user("frank@example.com")],
        "support": make_console_user("sol@example.com", role="Support"),
    }


def payment_of(account=None, *, status=Payment.Status.SUCCEEDED, started_ago=timedelta(0)):
    """A payment row as the pay button leaves it (no Stripe call needed for the rules that read it)."""
    account = account or make_student()
    payment = payment_row(
        account, status=status, lot=credit(account, 600) if status == Payment.Status.SUCCEEDED else None
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - started_ago)
    return payment


def dispute_on(payment, *, due_in=timedelta(days=7), status=Dispute.Status.NEEDS_RESPONSE, opened_ago=timedelta(0)):
    dispute = Dispute.objects.create(
        payment=payment,
        stripe_dispute_id=f"dp_staff_{payment.pk}_{next(_numbers)}",
        amount_cents=payment.amount_cents,
        currency=payment.currency,
        reason="fraudulent",
        status=status,
        evidence_due_by=timezone.now() + due_in,
    )
    Dispute.objects.filter(pk=dispute.pk).update(created_at=timezone.now() - opened_ago)
    return dispute


def flag_on(account, *, raised_ago=timedelta(0)):
    flag = FraudFlag.objects.create(
        account=account, rule=FraudFlag.Rule.ATTEMPTS, fraud_type="attempts", dedupe_key=f"attempts:{next(_numbers)}"
    )
    FraudFlag.objects.filter(pk=flag.pk).update(created_at=timezone.now() - raised_ago)
    return flag


def failing_event(*, attempts=3, status=WebhookEvent.Status.FAILED):
    return WebhookEvent.objects.create(
        stripe_event_id=f"evt_staff_{next(_numbers)}",
        type="charge.refunded",
        payload={},
        status=status,
        attempts=attempts,
        last_error="KeyError: 'charge'",
    )


def recipients(kind):
    return sorted(Notification.objects.filter(kind=kind).values_list("recipient__email", flat=True))


FINANCE = ["fiona@example.com", "frank@example.com"]
EVERYONE = ["fiona@example.com", "frank@example.com", "sol@example.com"]


class TestDisputes:
    def test_a_new_dispute_alerts_each_finance_member_once_with_its_evidence_due_date(self, team):
        dispute = dispute_on(payment_of(make_student("payer@example.com")))

        assert staff_alerts_scan() == 2
        assert staff_alerts_scan() == 0

        assert recipients(Kind.STAFF_DISPUTE_OPENED) == FINANCE  # Support reads disputes but cannot answer them
        alert = Notification.objects.filter(kind=Kind.STAFF_DISPUTE_OPENED).first()
        assert alert.title == "New dispute of €150.00 by payer@example.com"
        assert "payer@example.com disputed a payment of €150.00 (fraudulent)." in alert.body
        assert "Evidence is due by " in alert.body
        assert alert.link == f"/console/disputes/{dispute.pk}/"
        assert alert.dedupe_key == f"staff-dispute:{dispute.pk}:{alert.recipient_id}"

    def test_evidence_due_within_48_hours_alerts_once_and_not_before(self, team):
        dispute_on(payment_of(), due_in=timedelta(days=3))
        staff_alerts_scan()
        assert not Notification.objects.filter(kind=Kind.STAFF_EVIDENCE_DUE).exists()

        with time_machine.travel(timezone.now() + timedelta(days=1, hours=1)):
            staff_alerts_scan()
            staff_alerts_scan()

        assert recipients(Kind.STAFF_EVIDENCE_DUE) == FINANCE
        alert = Notification.objects.filter(kind=Kind.STAFF_EVIDENCE_DUE).first()
        assert alert.title.startswith("Dispute evidence due by ")
        assert "has not been submitted" in alert.body

    def test_submitted_evidence_resolves_both_dispute_alerts(self, team):
        dispute = dispute_on(payment_of(), due_in=timedelta(hours=20))
        staff_alerts_scan()
        assert Notification.objects.filter(resolved_at__isnull=True).count() == 4

        Dispute.objects.filter(pk=dispute.pk).update(
            evidence_submitted_at=timezone.now(), status=Dispute.Status.UNDER_REVIEW
        )
        staff_alerts_scan()

        assert not Notification.objects.filter(resolved_at__isnull=True).exists()
        assert Notification.objects.count() == 4  # nothing new for a dispute under review

    def test_a_closed_dispute_resolves_its_alert(self, team):
        dispute = dispute_on(payment_of())
        staff_alerts_scan()

        Dispute.objects.filter(pk=dispute.pk).update(closed=True, status=Dispute.Status.LOST)
        staff_alerts_scan()

        assert not Notification.objects.filter(resolved_at__isnull=True).exists()

    def test_an_inquiry_counts_as_a_dispute_and_a_dispute_already_answered_does_not(self, team):
        dispute_on(payment_of(), status=Dispute.Status.WARNING_NEEDS_RESPONSE)
        dispute_on(payment_of(), status=Dispute.Status.UNDER_REVIEW)

        assert staff_alerts_scan() == 2

    def test_a_dispute_opened_more_than_a_week_ago_is_not_news(self, team):
        dispute_on(payment_of(), opened_ago=timedelta(days=8), due_in=timedelta(days=5))

        assert staff_alerts_scan() == 0

    def test_a_dispute_delivered_by_its_webhook_alerts_finance_at_once(
        self, team, localstripe, client, django_capture_on_commit_callbacks
    ):
        paid = make_paid_payment(localstripe, account=make_student("payer@example.com"))
        stripe_event = samples.event("charge.dispute.created", samples.dispute(paid))

        # No scan is run here: the staff scan follows the event's processing (Huey runs it inline in tests).
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, stripe_event).status_code == 200

        dispute = Dispute.objects.get()
        assert recipients(Kind.STAFF_DISPUTE_OPENED) == FINANCE
        assert Notification.objects.filter(kind=Kind.STAFF_DISPUTE_OPENED, subject_id=dispute.pk).count() == 2


class TestFraudFlags:
    def test_a_new_flag_alerts_finance_and_support_once(self, team):
        flag_on(make_student("flagged@example.com"))

        assert staff_alerts_scan() == 3
        assert staff_alerts_scan() == 0

        assert recipients(Kind.STAFF_FRAUD_FLAG) == EVERYONE
        alert = Notification.objects.filter(kind=Kind.STAFF_FRAUD_FLAG).first()
        assert alert.title == "New fraud flag on flagged@example.com"
        assert alert.body.startswith("Many payment attempts in an hour for flagged@example.com.")
        assert alert.link == "/console/fraud/?status=open&q=flagged%40example.com"

    def test_a_cleared_or_confirmed_flag_resolves_its_alerts(self, team):
        cleared, confirmed, still_open = (flag_on(make_student()) for _ in range(3))
        staff_alerts_scan()

        FraudFlag.objects.filter(pk=cleared.pk).update(status=FraudFlag.Status.CLEARED)
        FraudFlag.objects.filter(pk=confirmed.pk).update(status=FraudFlag.Status.CONFIRMED)
        staff_alerts_scan()

        open_alerts = Notification.objects.filter(resolved_at__isnull=True)
        assert set(open_alerts.values_list("subject_id", flat=True)) == {still_open.pk}

    def test_a_flag_raised_more_than_a_week_ago_is_not_news(self, team):
        flag_on(make_student(), raised_ago=timedelta(days=8))

        assert staff_alerts_scan() == 0


class TestWebhookEvents:
    def test_failing_events_alert_each_person_once_not_once_per_event(self, team):
        failing_event()
        newest = failing_event(status=WebhookEvent.Status.ORPHAN, attempts=10)

        assert staff_alerts_scan() == 3
        failing_event()  # one more while the alert is open: the same stretch of failures
        assert staff_alerts_scan() == 0

        assert recipients(Kind.STAFF_WEBHOOK_FAILED) == EVERYONE
        alert = Notification.objects.filter(kind=Kind.STAFF_WEBHOOK_FAILED).first()
        assert alert.subject_id == newest.pk
        assert alert.body.startswith("2 Stripe events could not be applied")
        assert alert.link == "/console/webhooks/?status=failed&status=orphan&status=waiting"

    def test_events_retried_fine_resolve_the_alert_and_the_next_failure_alerts_again(self, team):
        event = failing_event()
        staff_alerts_scan()

        WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.PROCESSED)
        staff_alerts_scan()
        assert not Notification.objects.filter(resolved_at__isnull=True).exists()

        failing_event()
        assert staff_alerts_scan() == 3
        assert Notification.objects.filter(resolved_at__isnull=True).count() == 3

    def test_a_failure_still_being_retried_automatically_is_not_yet_news(self, team):
        failing_event(attempts=2)
        WebhookEvent.objects.create(stripe_event_id="evt_waiting", type="charge.refunded", payload={}, status="waiting")

        assert staff_alerts_scan() == 0


class TestStuckPayments:
    def test_a_payment_processing_past_the_reconciliation_window_alerts_finance_once(self, team):
        stuck = payment_of(status=Payment.Status.PROCESSING, started_ago=timedelta(minutes=19))
        payment_of(status=Payment.Status.PROCESSING, started_ago=timedelta(minutes=10))  # reconciliation's turn

        assert staff_alerts_scan() == 2
        assert staff_alerts_scan() == 0

        assert recipients(Kind.STAFF_PAYMENT_STUCK) == FINANCE
        alert = Notification.objects.filter(kind=Kind.STAFF_PAYMENT_STUCK).first()
        assert alert.subject_id == stuck.pk and alert.link == f"/console/payments/{stuck.pk}/"
        assert alert.title == f"Payment {stuck.pk} is stuck in flight"
        assert "still reads “Processing”: the reconciliation job has not settled it." in alert.body

    def test_3d_secure_left_waiting_counts_only_past_the_day_reconciliation_gives_it(self, team):
        payment_of(status=Payment.Status.REQUIRES_ACTION, started_ago=timedelta(hours=23))
        assert staff_alerts_scan() == 0

        payment_of(status=Payment.Status.REQUIRES_ACTION, started_ago=timedelta(hours=24, minutes=20))
        assert staff_alerts_scan() == 2

    def test_a_settled_payment_resolves_its_alert(self, team):
        stuck = payment_of(status=Payment.Status.PROCESSING, started_ago=timedelta(hours=1))
        staff_alerts_scan()

        Payment.objects.filter(pk=stuck.pk).update(status=Payment.Status.FAILED)
        staff_alerts_scan()

        assert not Notification.objects.filter(resolved_at__isnull=True).exists()


class TestRecipients:
    def test_each_role_is_offered_its_kinds(self, team):
        assert set(staff_kinds_for(team["finance"][0])) == STAFF_KINDS
        assert (
            set(staff_kinds_for(team["support"])) == set(SUPPORT_KINDS) == {"staff_webhook_failed", "staff_fraud_flag"}
        )
        assert staff_kinds_for(make_staff("another.intern@example.com")) == ()
        assert staff_kinds_for(make_student().user) == ()

    def test_someone_who_joins_finance_later_is_told_of_what_is_still_open(self, team):
        dispute_on(payment_of())
        staff_alerts_scan()

        newcomer = make_staff("nina@example.com")
        newcomer.groups.add(Group.objects.get(name="Finance"))
        assert staff_alerts_scan() == 1

        assert "nina@example.com" in recipients(Kind.STAFF_DISPUTE_OPENED)

    def test_no_console_staff_no_staff_alerts(self):
        make_staff("intern@example.com")
        dispute_on(payment_of())
        flag_on(make_student())
        failing_event()

        assert staff_alerts_scan() == 0
        assert not Notification.objects.exists()

    def test_the_scan_costs_the_same_queries_for_few_or_many_subjects_and_staff(self, team):
        def scan_queries():
            """The reads and updates of a scan (its inserts come in as many batches as the database needs)."""
            with CaptureQueriesContext(connection) as queries:
                staff_alerts_scan()
            return sum(not query["sql"].startswith("INSERT") for query in queries)

        dispute_on(payment_of(), due_in=timedelta(hours=20))
        flag_on(make_student())
        failing_event()
        payment_of(status=Payment.Status.PROCESSING, started_ago=timedelta(hours=1))
        few = scan_queries()

        for number in range(5):
            make_console_user(f"finance{number}@example.com")
            dispute_on(payment_of(), due_in=timedelta(hours=20))
            flag_on(make_student())
            failing_event()
            payment_of(status=Payment.Status.PROCESSING, started_ago=timedelta(hours=1))
        many = scan_queries()

        assert Notification.objects.filter(kind=Kind.STAFF_DISPUTE_OPENED).count() == 6 * 7
        assert few == many <= 18  # per rule: one read and one look-up of keys; the recipients; the resolves


class TestTheJobs:
    def test_the_periodic_scan_runs_the_staff_rules_and_emails_them(self, team, mailoutbox):
        dispute_on(payment_of(make_student("payer@example.com")))

        tasks.scan_alerts()

        assert recipients(Kind.STAFF_DISPUTE_OPENED) == FINANCE
        told = [message.to[0] for message in mailoutbox if message.subject.startswith("New dispute")]
        assert sorted(told) == FINANCE


class TestEmails:
    def test_finance_are_emailed_with_a_link_to_the_console(self, team, settings):
        dispute = dispute_on(payment_of(make_student("payer@example.com")))
        staff_alerts_scan()

        assert emails_send_due() == 2

        message = next(message for message in mail.outbox if message.to == ["fiona@example.com"])
        assert message.subject == "New dispute of €150.00 by payer@example.com"
        assert "A student disputed a payment with their bank." in message.body
        assert f"{settings.PORTAL_BASE_URL}/console/disputes/{dispute.pk}/" in message.body
        assert f"{settings.PORTAL_BASE_URL}/console/alerts/preferences/" in message.body
        html = message.alternatives[0][0]
        assert f'href="{settings.PORTAL_BASE_URL}/console/disputes/{dispute.pk}/"' in html
        assert ">Open the dispute</a>" in html

    @pytest.mark.parametrize("kind", sorted(STAFF_KINDS))
    def test_every_staff_kind_has_its_email(self, kind, team):
        finance = team["finance"][0]
        Notification.objects.create(
            recipient=finance, kind=kind, title="A title", body="The body.", link="/console/", dedupe_key=kind
        )

        assert emails_send_due() == 1
        assert "The body." in mail.outbox[0].body

    def test_someone_who_turned_an_email_off_still_sees_the_alert(self, team):
        support = team["support"]
        email_preferences_save(user=support, emailed_kinds=[Kind.STAFF_WEBHOOK_FAILED], offered_kinds=SUPPORT_KINDS)
        flag_on(make_student())
        staff_alerts_scan()

        emails_send_due()

        assert "sol@example.com" not in {message.to[0] for message in mail.outbox}
        alert = Notification.objects.get(recipient=support)
        assert alert.email_status == Notification.Email.SKIPPED and alert.resolved_at is None
