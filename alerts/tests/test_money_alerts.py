"""Alerts about money that moves a student's hours: a refund that takes hours back, a dispute that
holds them and the release after it. Each once per refund or dispute or release, however often the
scan runs; emailed unless turned off; resolved when what it warned about is over."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from alerts.models import STUDENT_KINDS, Notification
from alerts.notifications import alerts_scan, email_preferences_save, emails_send_due
from billing import samples
from billing.disputes.holds import dispute_record
from billing.refunds import refund_record
from billing.tests.builders import make_paid_payment, make_student, use
from portal.student.forms import EmailPreferencesForm

pytestmark = pytest.mark.django_db

Kind = Notification.Kind


@pytest.fixture
def paid(localstripe):
    """€150.00 for the Standard package of 10 h, really charged (by the stand-in). Its own
    "payment received" alert is out of the way (sent) before a test starts."""
    payment = make_paid_payment(localstripe, account=make_student("rui@example.com", first_name="Rui"))
    alerts_scan()
    emails_send_due()
    mail.outbox.clear()
    return payment


def refund(payment, amount_cents, *, status="succeeded", refund_id="re_1"):
    return refund_record(
        payment=payment, stripe_refund_id=refund_id, amount_cents=amount_cents, currency="EUR", status=status
    )


def dispute(payment, event_type="charge.dispute.funds_withdrawn", **shape):
    shape.setdefault("dispute_id", "dp_1")
    return dispute_record(payment=payment, dispute_object=samples.dispute(payment, **shape), event_type=event_type)


def alerts(kind):
    return list(Notification.objects.filter(kind=kind).order_by("id"))


class TestRefundHours:
    def test_a_refund_that_takes_hours_back_alerts_once(self, paid):
        refund(paid, 7500)

        assert alerts_scan() >= 1
        alerts_scan()

        [alert] = alerts(Kind.REFUND_HOURS)
        assert alert.recipient == paid.account.user
        assert alert.title == "€75.00 refunded, 5 h taken back from Standard"
        assert alert.body == (
            "€75.00 of your payment for Standard was refunded to your card, and 5 h of that package were "
            "taken back with it."
        )
        assert alert.link == reverse("student:lot_detail", args=[paid.lot_id])

    def test_each_refund_has_its_own_alert(self, paid):
        refund(paid, 3000, refund_id="re_1")
        alerts_scan()
        refund(paid, 3000, refund_id="re_2")
        alerts_scan()
        alerts_scan()

        assert [alert.title for alert in alerts(Kind.REFUND_HOURS)] == [
            "€30.00 refunded, 2 h taken back from Standard",
            "€30.00 refunded, 2 h taken back from Standard",
        ]

    def test_a_refund_of_money_only_takes_no_hours_and_raises_no_alert(self, paid):
        use(paid.account, 600)  # every hour used: nothing left to take back
        refund(paid, 15000)

        alerts_scan()

        assert alerts(Kind.REFUND_HOURS) == []

    def test_a_refund_that_fails_after_all_resolves_its_alert(self, paid):
        refund(paid, 7500, status="pending")
        alerts_scan()
        refund(paid, 7500, status="failed")

        alerts_scan()

        [alert] = alerts(Kind.REFUND_HOURS)
        assert alert.resolved_at is not None

    def test_a_console_refund_alerts_the_student_at_once(self, paid, finance_client):
        url = reverse("console:refund_create", args=[paid.pk])
        form = {"amount": "75.00", "hours": "5", "reason": "Half the course cancelled."}
        review = finance_client.post(url, form)
        key = re.search(r'name="key" value="([^"]+)"', review.content.decode()).group(1)

        finance_client.post(url, form | {"confirm": "1", "key": key}, HTTP_HX_REQUEST="true")

        [alert] = alerts(Kind.REFUND_HOURS)  # no scan has run
        assert alert.title == "€75.00 refunded, 5 h taken back from Standard"
        alerts_scan()
        assert alerts(Kind.REFUND_HOURS) == [alert]  # the scan finds it alerted already


class TestDisputeHolds:
    def test_a_dispute_that_holds_hours_alerts_once(self, paid):
        dispute(paid, withdrawn=True)

        alerts_scan()
        alerts_scan()

        [alert] = alerts(Kind.DISPUTE_HOLD)
        assert alert.title == "10 h on hold for a dispute"
        assert "Your bank opened a dispute about your payment for Standard (€150.00)." in alert.body
        assert "10 h of that package are on hold and cannot be used" in alert.body
        assert alert.link == reverse("student:lot_detail", args=[paid.lot_id])
        assert alerts(Kind.DISPUTE_RELEASED) == []

    def test_a_dispute_whose_funds_have_not_left_holds_nothing_and_says_nothing(self, paid):
        dispute(paid, event_type="charge.dispute.created")

        alerts_scan()

        assert alerts(Kind.DISPUTE_HOLD) == []

    def test_a_won_dispute_releases_the_hours_resolves_the_hold_and_says_so_once(self, paid):
        dispute(paid, withdrawn=True)
        alerts_scan()
        dispute(paid, "charge.dispute.closed", status="won", reinstated=True)

        alerts_scan()
        alerts_scan()

        [hold] = alerts(Kind.DISPUTE_HOLD)
        assert hold.resolved_at is not None
        [released] = alerts(Kind.DISPUTE_RELEASED)
        assert released.title == "10 h released after a dispute"
        assert (
            released.body
            == "The dispute about your payment for Standard is settled: the 10 h on hold can be used again."
        )
        assert released.resolved_at is None

    def test_a_lost_dispute_resolves_the_hold_and_releases_nothing(self, paid):
        dispute(paid, withdrawn=True)
        alerts_scan()
        dispute(paid, "charge.dispute.closed", status="lost")

        alerts_scan()

        [hold] = alerts(Kind.DISPUTE_HOLD)
        assert hold.resolved_at is not None
        assert alerts(Kind.DISPUTE_RELEASED) == []

    def test_the_hold_is_on_the_dashboard_banner_and_the_release_is_not(self, paid, client):
        client.force_login(paid.account.user)
        dispute(paid, withdrawn=True)
        alerts_scan()

        on_hold = client.get(reverse("student:alert_banner")).content.decode()
        dispute(paid, "charge.dispute.closed", status="won", reinstated=True)
        alerts_scan()
        released = client.get(reverse("student:alert_banner")).content.decode()

        assert "10 h on hold for a dispute" in on_hold
        assert "released after a dispute" not in released and "on hold" not in released


class TestEmails:
    @pytest.mark.parametrize(
        ("make_alert", "kind", "text"),
        [
            (lambda paid: refund(paid, 7500), Kind.REFUND_HOURS, "A refund took hours back."),
            (lambda paid: dispute(paid, withdrawn=True), Kind.DISPUTE_HOLD, "Some of your hours are on hold."),
        ],
    )
    def test_each_kind_is_emailed_once_in_text_and_html(self, paid, make_alert, kind, text):
        make_alert(paid)
        alerts_scan()

        emails_send_due()
        assert emails_send_due() == 0

        [alert] = alerts(kind)
        # (A hold of every hour also says the balance is empty, in an email of its own.)
        [message] = [message for message in mail.outbox if message.subject == alert.title]
        assert message.to == ["rui@example.com"]
        assert "Hello Rui," in message.body and text in message.body and alert.body in message.body
        assert f"http://127.0.0.1:8000/lots/{paid.lot_id}/" in message.body
        [(html, mimetype)] = message.alternatives
        assert mimetype == "text/html" and f"<strong>{text}</strong>" in html and ">See the package</a>" in html

    def test_the_release_is_emailed(self, paid):
        dispute(paid, withdrawn=True)
        dispute(paid, "charge.dispute.closed", status="won", reinstated=True)
        alerts_scan()

        emails_send_due()

        [released] = mail.outbox  # held and released before a scan saw the hold: only the news that counts
        assert released.subject == "10 h released after a dispute"
        assert "Your hours are back." in released.body
        [(html, _)] = released.alternatives
        assert "<strong>Your hours are back.</strong>" in html

    def test_a_kind_turned_off_is_shown_but_not_emailed(self, paid):
        others = [kind for kind in STUDENT_KINDS if kind != Kind.REFUND_HOURS]
        email_preferences_save(user=paid.account.user, emailed_kinds=others)
        refund(paid, 7500)
        alerts_scan()

        emails_send_due()

        assert [message.subject for message in mail.outbox if "refunded" in message.subject] == []
        [alert] = alerts(Kind.REFUND_HOURS)
        assert alert.email_status == Notification.Email.SKIPPED and alert.read_at is None

    def test_the_preferences_offer_the_new_kinds(self):
        offered = dict(EmailPreferencesForm().fields["emailed"].choices)

        assert offered[Kind.REFUND_HOURS] == "Hours taken back after a refund"
        assert offered[Kind.DISPUTE_HOLD] == "Hours on hold for a dispute"
        assert offered[Kind.DISPUTE_RELEASED] == "Hours released after a dispute"
