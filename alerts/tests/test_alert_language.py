"""Alerts read in their reader's language and time zone: an email in its recipient's, whoever raised
the alert and in whatever language that request or job ran; the bell and the inbox in the viewer's,
at the time they look (the text is built from the facts stored with the alert, not frozen).

Asserts marked `# catalogue` check Portuguese words and need the compiled catalogue (`make
catalogues`); the others (money, dates, times, the stored facts) hold without it.
"""

import itertools
import zoneinfo
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone, translation

from alerts.models import Notification
from alerts.notifications import alerts_scan, emails_send_due, payment_notify
from alerts.selectors import messages_about_payment
from alerts.staff import staff_alerts_scan
from alerts.texts import TEXTS
from billing.models import Payment
from billing.tests.builders import credit, make_console_user, make_plan, make_student
from portal.locale import locale_preferences_save

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
# A lot bought then, valid 5 days, expires on 30 Nov 2027 at 23:30 UTC: 23:30 that day in Lisbon,
# already 00:30 on 1 Dec in Berlin (the site's zone).
BOUGHT = datetime(2027, 11, 25, 23, 30, tzinfo=UTC)
LISBON_EXPIRY, BERLIN_EXPIRY = "30/11/2027, 23:30", "1 Dec 2027, 00:30"
EUROS_PT, EUROS_EN = "150,00\N{NO-BREAK SPACE}€", "€150.00"
_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def frozen():
    # The override also puts back the language a signed-in request activated (as LocaleMiddleware
    # and portal.locale leave it in the thread), so the next test starts as it would.
    with time_machine.travel(BOUGHT, tick=False), translation.override(settings.LANGUAGE_CODE):
        yield


def in_english():
    """What a Huey job, or the request of someone who reads English, has active."""
    return active("en", "Europe/Berlin")


def in_portuguese():
    return active("pt-pt", "Europe/Lisbon")


@contextmanager
def active(language, zone):
    with translation.override(language), timezone.override(zoneinfo.ZoneInfo(zone)):
        yield


def portuguese_student(email="joao@example.com"):
    return make_student(email, first_name="João", language="pt-pt", time_zone="Europe/Lisbon")


def english_student(email="emma@example.com"):
    return make_student(email, first_name="Emma", language="en")


def paid(account, *, status=Payment.Status.SUCCEEDED):
    number = next(_numbers)
    return Payment.objects.create(
        account=account,
        plan=make_plan(name="Standard"),
        kind=Payment.Kind.PURCHASE,
        amount_cents=15000,
        currency="EUR",
        minutes=600,
        validity_days=90,
        status=status,
        idempotency_key=f"alert-language-{number}",
        stripe_payment_intent_id=f"pi_alert_language_{number}",
        lot=credit(account, 600) if status == Payment.Status.SUCCEEDED else None,
    )


def inbox_page(client, user):
    client.force_login(user)
    response = client.get(reverse("student:alerts"))
    assert response.status_code == 200
    return response.content.decode()


class TestEmails:
    def test_a_portuguese_students_email_is_in_portuguese_on_lisbon_time_though_a_job_in_english_sent_it(self):
        account = portuguese_student()
        credit(account, 600, days_valid=5)

        with in_english():
            alerts_scan()
            assert emails_send_due() == 1

        [message] = mail.outbox
        html, mimetype = message.alternatives[0]
        assert message.to == ["joao@example.com"] and mimetype == "text/html"
        assert LISBON_EXPIRY in message.body and LISBON_EXPIRY in html
        assert BERLIN_EXPIRY not in message.body
        assert '<html lang="pt-pt">' in html
        # catalogue
        assert message.subject == "10 h a expirar dentro de uma semana"
        assert message.body.startswith("Olá, João,")
        assert f"Algumas horas expiram dentro de uma semana. 10 h do pacote Standard expiram a {LISBON_EXPIRY}." in (
            message.body
        )
        assert ">Ver o pacote</a>" in html

    def test_a_portuguese_students_payment_email_shows_portuguese_money(self):
        account = portuguese_student()
        payment = paid(account)

        with in_english():
            payment_notify(payment=payment)
            emails_send_due()

        [message] = mail.outbox
        html = message.alternatives[0][0]
        assert f"Standard ({EUROS_PT})" in message.body and f"Standard ({EUROS_PT})" in html
        assert EUROS_EN not in message.body + html
        # catalogue
        assert message.subject == "Mais 10 h no saldo"
        assert f"O pagamento de Standard ({EUROS_PT}) foi concluído e o saldo aumentou 10 h." in message.body
        assert ">Transferir o recibo</a>" in html

    def test_an_english_students_email_stays_english_though_raised_in_a_portuguese_request(self):
        account = english_student()
        payment = paid(account)

        with in_portuguese():
            payment_notify(payment=payment)
            emails_send_due()

        [message] = mail.outbox
        assert message.subject == "10 h added"
        assert f"Your payment for Standard ({EUROS_EN}) went through and 10 h were added." in message.body
        assert message.body.startswith("Hello Emma,")
        assert '<html lang="en">' in message.alternatives[0][0]

    def test_each_staff_member_is_emailed_in_their_own_language_and_zone(self):
        pedro = make_console_user("pedro@example.com")
        pedro.language, pedro.time_zone = "pt-pt", "Europe/Lisbon"
        pedro.save()
        make_console_user("fiona@example.com")  # English by default, on the site's time
        stuck = paid(english_student(), status=Payment.Status.PROCESSING)
        Payment.objects.filter(pk=stuck.pk).update(created_at=BOUGHT - timedelta(hours=1))  # 22:30 UTC, long stuck

        with in_english():
            staff_alerts_scan()
            assert emails_send_due() == 2

        told = {message.to[0]: message for message in mail.outbox}
        english, portuguese = told["fiona@example.com"], told["pedro@example.com"]
        assert english.subject == f"Payment {stuck.pk} is stuck in flight"
        assert f"of {EUROS_EN} by emma@example.com started on 25 Nov 2027, 23:30 and still reads “Processing”" in (
            english.body
        )
        assert f"{EUROS_PT}" in portuguese.body and "25/11/2027, 22:30" in portuguese.body
        # catalogue
        assert portuguese.subject == f"O pagamento {stuck.pk} está preso em processamento"
        assert "Um pagamento está preso em processamento." in portuguese.body


class TestInApp:
    def test_an_english_student_reads_in_english_an_alert_raised_in_a_portuguese_request(self, client):
        account = english_student()
        with in_portuguese():
            payment_notify(payment=paid(account))

        page = inbox_page(client, account.user)

        assert "10 h added" in page
        assert f"Your payment for Standard ({EUROS_EN}) went through and 10 h were added." in page
        assert EUROS_PT not in page

    def test_switching_the_language_and_zone_switches_the_alerts_text(self, client):
        account = portuguese_student()
        credit(account, 600, days_valid=5)
        payment_notify(payment=paid(account))
        alerts_scan()

        page = inbox_page(client, account.user)
        assert LISBON_EXPIRY in page and EUROS_PT in page
        assert BERLIN_EXPIRY not in page and EUROS_EN not in page
        # catalogue
        assert f"O pagamento de Standard ({EUROS_PT}) foi concluído e o saldo aumentou 10 h." in page
        assert f"10 h do pacote Standard expiram a {LISBON_EXPIRY}." in page

        locale_preferences_save(account.user, language="en", time_zone="")

        page = inbox_page(client, account.user)
        assert f"Your payment for Standard ({EUROS_EN}) went through and 10 h were added." in page
        assert f"10 h of your Standard package expire on {BERLIN_EXPIRY}." in page
        assert LISBON_EXPIRY not in page and EUROS_PT not in page

    def test_the_text_is_built_when_read_from_facts_stored_when_raised(self):
        account = portuguese_student()
        with in_english():
            payment_notify(payment=paid(account))
        alert = Notification.objects.get()

        assert alert.params == {"plan": "Standard", "amount_cents": 15000, "currency": "EUR", "minutes": 600}
        # Written once as of the site's defaults, for what reads the table itself.
        assert alert.stored_title == "10 h added"
        with in_portuguese():
            assert EUROS_PT in alert.body
            assert alert.title == "Mais 10 h no saldo"  # catalogue
        with in_english():
            assert alert.body == f"Your payment for Standard ({EUROS_EN}) went through and 10 h were added."

    def test_an_alert_written_as_fixed_text_reads_as_written(self):
        account = portuguese_student()
        alert = Notification.objects.create(
            recipient=account.user, kind=Kind.LOW_BALANCE, title="Only 1 h left", body="Top up.", dedupe_key="old"
        )

        with in_portuguese():
            assert (alert.title, alert.body) == ("Only 1 h left", "Top up.")


def test_every_kind_has_its_text():
    assert set(TEXTS) == set(Kind.values)


def test_dispute_evidence_quotes_the_alerts_in_english_whatever_the_students_language():
    account = portuguese_student()
    payment = paid(account)
    with in_portuguese():
        payment_notify(payment=payment)

        [(_at, text)] = messages_about_payment(payment=payment)

    assert (
        text == f"10 h added: Your payment for Standard ({EUROS_EN}) went through and 10 h were added. (in the portal)"
    )
