"""A failed payment in the console: Finance asks the student to pay again (an alert and an email
whose link opens that package's button on the dashboard), or retries once a charge that never
reached the bank. Support may only read."""

from datetime import timedelta
from html import unescape

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from alerts.models import Notification
from alerts.notifications import alerts_scan, emails_send_due, pay_again_send
from billing import payments
from billing.models import AuditEntry, Payment, PaymentMethod
from billing.tests.builders import add_card, credit, make_plan, make_student
from billing.tests.network import LossyProxy

pytestmark = pytest.mark.django_db

RATE_LIMITED = (429, {"error": {"type": "rate_limit_error", "message": "Too many requests."}})
PAY_AGAIN = "Ask to pay again"
RETRY = "Retry the charge"


@pytest.fixture
def plan():
    return make_plan("Standard", minutes=600, price_cents=15000, validity_days=90)


def saved_card(account, last4="4242", **fields):
    """A card row as the cards page saves it (enough for pages that only show it)."""
    return PaymentMethod.objects.create(
        account=account,
        stripe_payment_method_id=f"pm_{account.pk}_{last4}",
        brand="visa",
        last4=last4,
        exp_month=12,
        exp_year=timezone.localdate().year + 2,
        **fields,
    )


def failed_payment(account, plan, *, code=Payment.Failure.PROVIDER_UNAVAILABLE, card=None, **fields):
    """A payment as _charge leaves one that failed with `code`."""
    return Payment.objects.create(
        account=account,
        plan=plan,
        kind=fields.pop("kind", Payment.Kind.PURCHASE),
        amount_cents=plan.price_cents,
        currency=plan.currency,
        minutes=plan.minutes,
        validity_days=plan.validity_days,
        payment_method=card or account.payment_methods.active().first(),
        status=Payment.Status.FAILED,
        failure_code=code,
        failure_message=payments.NOT_CHARGED if code == Payment.Failure.PROVIDER_UNAVAILABLE else "Declined.",
        idempotency_key=f"failed-{account.pk}-{Payment.objects.count()}",
        settled_at=timezone.now(),
        **fields,
    )


@pytest.fixture
def student_with_failure(student, plan):
    saved_card(student, is_default=True)
    return failed_payment(student, plan)


def page_of(client, payment):
    return unescape(client.get(reverse("console:payment", args=[payment.pk])).content.decode())


class TestThePaymentPage:
    def test_finance_sees_both_actions_for_a_payment_stripe_did_not_take(self, finance_client, student_with_failure):
        page = page_of(finance_client, student_with_failure)
        assert PAY_AGAIN in page and RETRY in page

    def test_a_decline_may_be_paid_again_but_not_retried(self, finance_client, student, plan):
        saved_card(student, is_default=True)
        page = page_of(finance_client, failed_payment(student, plan, code="card_declined"))
        assert PAY_AGAIN in page and RETRY not in page

    def test_a_payment_that_succeeded_offers_neither(self, finance_client, student_with_failure):
        Payment.objects.filter(pk=student_with_failure.pk).update(status=Payment.Status.PROCESSING)
        page = page_of(finance_client, student_with_failure)
        assert PAY_AGAIN not in page and RETRY not in page

    def test_support_sees_neither(self, support_client, student_with_failure):
        page = page_of(support_client, student_with_failure)
        assert "Failure" in page and PAY_AGAIN not in page and RETRY not in page


class TestPayAgain:
    def url(self, payment):
        return reverse("console:payment_pay_again", args=[payment.pk])

    def test_finance_sends_an_alert_whose_link_opens_the_button(
        self, finance_client, finance_user, student_with_failure
    ):
        failed = student_with_failure
        form = unescape(finance_client.get(self.url(failed)).content.decode())
        assert "gets an alert and an email whose button pays €150.00 for Standard again" in form

        response = finance_client.post(self.url(failed), {"reason": "The student asked on the phone."})

        assert response.status_code == 302 and response["Location"] == reverse("console:payment", args=[failed.pk])
        alert = Notification.objects.get(kind=Notification.Kind.PAY_AGAIN)
        assert (alert.recipient, alert.subject_id) == (failed.account.user, failed.pk)
        assert alert.link == f"/?again={failed.pk}"
        assert alert.title == "Please pay again for Standard"
        assert "did not go through: We could not reach the payment provider." in alert.body
        entry = AuditEntry.objects.get(action="payment.pay_again")
        assert (entry.actor, entry.reason, entry.payment_id) == (
            finance_user,
            "The student asked on the phone.",
            failed.pk,
        )
        assert entry.after == {"notification_id": alert.pk}
        assert "The student has been asked to pay again." in unescape(
            finance_client.get(reverse("console:payment", args=[failed.pk])).content.decode()
        )

    def test_the_email_carries_the_link(self, finance_client, student_with_failure, settings):
        finance_client.post(self.url(student_with_failure), {"reason": "Reminder"})
        mail.outbox.clear()

        assert emails_send_due() == 1

        [email] = mail.outbox
        assert email.subject == "Please pay again for Standard" and email.to == ["ana@example.com"]
        assert f"{settings.PORTAL_BASE_URL}/?again={student_with_failure.pk}" in email.body
        assert "Pay again</a>" in email.alternatives[0][0]

    def test_a_second_send_within_a_day_is_refused_and_a_day_later_replaces_the_first(
        self, finance_client, finance_user, student_with_failure
    ):
        url = self.url(student_with_failure)
        finance_client.post(url, {"reason": "First reminder"})

        again = unescape(finance_client.post(url, {"reason": "Second reminder"}).content.decode())

        assert "The student was already asked to pay again on" in again
        assert Notification.objects.filter(kind=Notification.Kind.PAY_AGAIN).count() == 1
        with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
            pay_again_send(payment=student_with_failure, actor=finance_user, reason="Second reminder")
        first, second = Notification.objects.filter(kind=Notification.Kind.PAY_AGAIN).order_by("created_at")
        assert first.resolved_at is not None and second.resolved_at is None
        assert AuditEntry.objects.filter(action="payment.pay_again").count() == 2

    def test_a_payment_that_is_not_failed_or_not_for_sale_is_refused(self, finance_client, student_with_failure, plan):
        plan.is_active = False
        plan.save()

        page = unescape(finance_client.post(self.url(student_with_failure), {"reason": "Reminder"}).content.decode())

        assert "Standard is no longer on sale; nothing was done." in page
        assert not Notification.objects.filter(kind=Notification.Kind.PAY_AGAIN).exists()

    def test_an_empty_reason_is_a_form_error(self, finance_client, student_with_failure):
        response = finance_client.post(self.url(student_with_failure), {"reason": "  "})
        assert response.status_code == 200 and "This field is required" in response.content.decode()
        assert not Notification.objects.exists() and not AuditEntry.objects.exists()

    def test_the_alert_resolves_once_the_student_has_paid(self, finance_client, student_with_failure, plan):
        finance_client.post(self.url(student_with_failure), {"reason": "Reminder"})
        paid = failed_payment(student_with_failure.account, plan)
        lot = credit(student_with_failure.account, plan.minutes, plan=plan)
        Payment.objects.filter(pk=paid.pk).update(status=Payment.Status.SUCCEEDED, lot=lot, settled_at=timezone.now())

        alerts_scan()

        assert Notification.objects.get(kind=Notification.Kind.PAY_AGAIN).resolved_at is not None

    def test_support_is_refused(self, support_client, student_with_failure):
        assert support_client.get(self.url(student_with_failure)).status_code == 403
        assert support_client.post(self.url(student_with_failure), {"reason": "x"}).status_code == 403
        assert not Notification.objects.exists()

    def test_an_unknown_payment_is_not_found(self, finance_client):
        assert finance_client.get(reverse("console:payment_pay_again", args=[999999])).status_code == 404


def purchase_stripe_did_not_take(localstripe, settings, account, plan, number="4242424242424242"):
    """A purchase Stripe answered "too many requests" to: never charged."""
    add_card(account, localstripe, number)
    proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/payment_intents$": RATE_LIMITED})
    settings.STRIPE_API_BASE = proxy.url
    try:
        payment = payments.payment_start(
            account=account, token=payments.payment_token_issue(account=account, plan=plan, kind="purchase")
        )
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url
    assert payment.failure_code == Payment.Failure.PROVIDER_UNAVAILABLE
    return payment


def retry_url(payment):
    return reverse("console:payment_retry", args=[payment.pk])


class TestRetry:
    @pytest.fixture
    def failed(self, localstripe, settings, student, plan):
        return purchase_stripe_did_not_take(localstripe, settings, student, plan)

    def test_finance_retries_it_and_the_student_hears_it_went_through(self, finance_client, localstripe, failed):
        form = unescape(finance_client.get(retry_url(failed)).content.decode())
        assert "Charge €150.00 for Standard to Visa 4242 again, once" in form

        finance_client.post(retry_url(failed), {"reason": "Stripe outage this morning."})

        retried = Payment.objects.get(retry_of=failed)
        assert retried.status == Payment.Status.SUCCEEDED
        page = page_of(finance_client, failed)
        assert f"The retry (payment {retried.pk}) went through: €150.00 charged, 10 h added." in page
        assert f"Payment {retried.pk}" in page and RETRY not in page  # retried once: the button is gone
        assert Notification.objects.filter(kind=Notification.Kind.PAYMENT_SUCCEEDED, subject_id=retried.pk).exists()
        assert len(localstripe.payment_intents()) == 1

    def test_a_double_submit_charges_once(self, finance_client, localstripe, failed):
        finance_client.post(retry_url(failed), {"reason": "Stripe outage."})

        again = unescape(finance_client.post(retry_url(failed), {"reason": "Stripe outage."}).content.decode())

        assert "This payment was already retried once" in again
        assert Payment.objects.filter(retry_of=failed).count() == 1
        assert len(localstripe.payment_intents()) == 1

    def test_support_is_refused(self, support_client, localstripe, failed):
        assert support_client.get(retry_url(failed)).status_code == 403
        assert support_client.post(retry_url(failed), {"reason": "Outage"}).status_code == 403
        assert not Payment.objects.filter(retry_of=failed).exists()


def test_a_retry_the_bank_wants_confirmed_alerts_the_student_at_once(
    finance_client, localstripe, settings, student, plan
):
    failed = purchase_stripe_did_not_take(localstripe, settings, student, plan, number="4000002760003184")

    finance_client.post(retry_url(failed), {"reason": "Stripe outage."})

    retried = Payment.objects.get(retry_of=failed)
    assert retried.status == Payment.Status.REQUIRES_ACTION
    alert = Notification.objects.get(kind=Notification.Kind.PAYMENT_NEEDS_ACTION, subject_id=retried.pk)
    assert alert.link == f"/?resume={retried.pk}"
    assert "asks them to confirm the retry" in page_of(finance_client, failed)


class TestTheDashboardLink:
    def test_it_shows_that_packages_button_for_each_saved_card(self, student_client, student, plan):
        saved_card(student, "4242", is_default=True)
        saved_card(student, "1881")
        failed = failed_payment(student, plan)

        page = unescape(student_client.get(f"/?again={failed.pk}").content.decode())

        assert "Pay again for Standard" in page
        assert "Your payment of €150.00 on" in page and "We could not reach the payment provider." in page
        assert "Buy 10 h for €150.00 with Visa 4242" in page
        assert "Buy 10 h for €150.00 with Visa 1881" in page

    def test_a_renewal_is_offered_as_the_renewal_of_its_lot(self, student_client, student, plan):
        saved_card(student, is_default=True)
        failed = failed_payment(student, plan, kind=Payment.Kind.RENEWAL)
        assert "Renew 10 h for €150.00 with Visa 4242" in student_client.get(f"/?again={failed.pk}").content.decode()

    def test_its_button_is_the_normal_one_click_payment(self, student_client, localstripe, student, plan):
        add_card(student, localstripe)
        failed = failed_payment(student, plan)
        page = student_client.get(f"/?again={failed.pk}").content.decode()
        section = page[page.index('id="pay-again"') :]
        token = section.split('name="token" value="')[1].split('"')[0]

        student_client.post(reverse("student:pay"), {"token": token})

        assert Payment.objects.filter(status=Payment.Status.SUCCEEDED).count() == 1
        after = unescape(student_client.get(f"/?again={failed.pk}").content.decode())
        assert "Pay again for Standard" not in after
        assert "There is nothing to pay again for that payment any more" in after

    def test_another_students_payment_is_ignored(self, student_client, plan):
        other = make_student("bo@example.com")
        saved_card(other, is_default=True)
        failed = failed_payment(other, plan)

        page = student_client.get(f"/?again={failed.pk}").content.decode()

        assert "Pay again" not in page and "nothing to pay again" not in page

    def test_a_package_no_longer_on_sale_says_so(self, student_client, student_with_failure, plan):
        plan.is_active = False
        plan.save()
        page = unescape(student_client.get(f"/?again={student_with_failure.pk}").content.decode())
        assert "Pay again for Standard" not in page
        assert "There is nothing to pay again for that payment any more" in page

    @pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", str(2**63), "", "\x00"])
    def test_a_bad_value_is_ignored(self, student_client, student_with_failure, value):
        response = student_client.get("/", {"again": value})
        assert response.status_code == 200 and "Pay again" not in response.content.decode()

    def test_its_fragment_refreshes_with_fresh_tokens(self, student_client, student_with_failure):
        response = student_client.get(
            f"/?again={student_with_failure.pk}", headers={"HX-Request": "true", "HX-Target": "pay-again"}
        )
        fragment = unescape(response.content.decode())
        assert fragment.lstrip().startswith('<section id="pay-again"') and 'name="token"' in fragment
