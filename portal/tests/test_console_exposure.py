"""What the console shows and sends is no more than staff need: a Stripe object's client secrets
never reach a staff member's screen, and only Finance sends a receipt to an address that is not the
student's own."""

from datetime import timedelta

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from billing import samples
from billing.events import webhook_event_ingest
from billing.models import AuditEntry
from billing.tests.builders import make_paid_payment, make_student

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(localstripe):
    return make_paid_payment(localstripe, account=make_student("payer@example.com"))


class TestRawPayloads:
    def test_a_payment_intents_client_secret_is_redacted_at_any_depth(self, support_client, localstripe, paid):
        intent = localstripe.get(f"/v1/payment_intents/{paid.stripe_payment_intent_id}")
        assert intent["client_secret"], "Stripe's object carries it: the console must not show it"
        setup_intent = {"id": "seti_1", "object": "setup_intent", "client_secret": "seti_1_secret_abc"}
        stripe_event = samples.event("payment_intent.succeeded", intent | {"metadata": {"setup": setup_intent}})
        event, _ = webhook_event_ingest(event=stripe_event)
        body = support_client.get(reverse("console:webhook", args=[event.pk])).content.decode()
        assert intent["client_secret"] not in body and "seti_1_secret_abc" not in body
        assert body.count("[redacted]") == 2
        assert paid.stripe_payment_intent_id in body, "the rest of the object is still shown"

    def test_a_client_secret_inside_a_url_is_redacted_too(self, support_client, paid):
        secret = f"{paid.stripe_payment_intent_id}_secret_Zx81Qq"
        intent = {
            "id": paid.stripe_payment_intent_id,
            "object": "payment_intent",
            "status": "requires_action",
            "next_action": {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": f"https://hooks.stripe.com/3d_secure_2/hosted?payment_intent_client_secret={secret}",
                    "return_url": "https://hours.example.com/",
                },
                "use_stripe_sdk": {"source": "src_client_secret_Ab12Cd34", "type": "three_d_secure_redirect"},
            },
        }
        event, _ = webhook_event_ingest(event=samples.event("payment_intent.requires_action", intent))
        body = support_client.get(reverse("console:webhook", args=[event.pk])).content.decode()
        assert secret not in body and "Zx81Qq" not in body and "src_client_secret_Ab12Cd34" not in body
        assert "https://hooks.stripe.com/3d_secure_2/hosted?payment_intent_client_secret=[redacted]" in body


class TestReceiptResend:
    def resend(self, client, paid, to):
        return client.post(reverse("console:receipt_resend", args=[paid.receipt.pk]), {"to": to})

    def test_support_resends_to_the_students_own_addresses(
        self, support_client, paid, django_capture_on_commit_callbacks
    ):
        EmailAddress.objects.create(user=paid.account.user, email="payer.parent@example.com", verified=True)
        with django_capture_on_commit_callbacks(execute=True):
            assert self.resend(support_client, paid, "").status_code == 302
            assert self.resend(support_client, paid, "Payer.Parent@example.com").status_code == 302
        assert [message.to for message in mail.outbox][-2:] == [["payer@example.com"], ["Payer.Parent@example.com"]]

    def test_support_cannot_send_a_receipt_anywhere_else(
        self, support_client, paid, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = self.resend(support_client, paid, "someone.else@example.com")
        assert response.status_code == 200
        assert "Only Finance may send a receipt" in response.content.decode()
        assert not AuditEntry.objects.filter(action="receipt.resend").exists()
        assert not any("someone.else@example.com" in message.to for message in mail.outbox)

    def test_finance_may_send_it_to_another_address(self, finance_client, paid, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            assert self.resend(finance_client, paid, "accountant@example.com").status_code == 302
        assert mail.outbox[-1].to == ["accountant@example.com"]
        assert AuditEntry.objects.get(action="receipt.resend").after == {"to": "accountant@example.com"}

    def test_an_unverified_address_on_the_account_is_not_the_students_own(
        self, support_client, paid, django_capture_on_commit_callbacks
    ):
        EmailAddress.objects.create(user=paid.account.user, email="added.by.anyone@example.com", verified=False)
        response = self.resend(support_client, paid, "added.by.anyone@example.com")
        assert "Only Finance may send a receipt" in response.content.decode()

    def test_finance_sending_elsewhere_needs_a_fresh_code(
        self, finance_client, paid, django_capture_on_commit_callbacks
    ):
        with time_machine.travel(timedelta(minutes=16)), django_capture_on_commit_callbacks(execute=True):
            elsewhere = self.resend(finance_client, paid, "accountant@example.com")
            own = self.resend(finance_client, paid, "")
        assert elsewhere["Location"].startswith(reverse("mfa_reauthenticate"))
        assert own["Location"] == reverse("console:payment", args=[paid.pk])
        assert [message.to for message in mail.outbox][-1] == ["payer@example.com"]
        assert not any("accountant@example.com" in message.to for message in mail.outbox)
