"""Answering a dispute from the console: evidence prefilled from our records, saved as a draft,
submitted to Stripe once, or the dispute accepted. Stripe's dispute and file endpoints are stubbed
at the HTTP boundary (localstripe has none); everything else runs against localstripe."""

import time

import pytest
from django.utils import timezone

from alerts.notifications import payment_notify
from alerts.selectors import messages_about_payment
from billing import samples
from billing.disputes.evidence import (
    EVIDENCE_FIELDS,
    EVIDENCE_MAX_CHARS,
    DisputeProviderFailed,
    DisputeRefused,
    dispute_accept,
    dispute_evidence_prefill,
    dispute_evidence_save,
    dispute_evidence_submit,
)
from billing.disputes.holds import dispute_record
from billing.formatting import date_text
from billing.models import AuditEntry, Dispute, LedgerEntry
from billing.tests.builders import credit, make_paid_payment, use
from billing.tests.pdfs import pdf_text
from billing.tests.stripe_stubs import stripe_disputes

pytestmark = pytest.mark.django_db

DISPUTE_ID = "dp_1QevidenceTest"


@pytest.fixture
def paid(localstripe):
    return make_paid_payment(localstripe)


def dispute_object(paid, **changes):
    """A dispute as Stripe shows it once the card holder's bank took the money back."""
    return samples.dispute(paid, withdrawn=True, dispute_id=DISPUTE_ID) | changes


def open_dispute(paid, stripe_dispute):
    return dispute_record(payment=paid, dispute_object=stripe_dispute, event_type="charge.dispute.funds_withdrawn")


@pytest.fixture
def stripe_dispute(paid):
    return dispute_object(paid)


@pytest.fixture
def dispute(paid, stripe_dispute):
    return open_dispute(paid, stripe_dispute)


@pytest.fixture
def stripe(localstripe, settings, stripe_dispute):
    with stripe_disputes(localstripe, settings, stripe_dispute) as stub:
        yield stub


def lot_minutes(payment):
    payment.lot.refresh_from_db()
    return payment.lot.minutes_remaining


def actions():
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


class TestPrefill:
    def test_it_lists_the_lots_sessions_and_the_receipt_number(self, paid, stripe_dispute):
        credit(paid.account, 60, days_valid=30, name="Trial")  # expires first, so it is used first
        use(paid.account, 60, tutor="Mr. Elsewhere", subject="Chemistry")
        use(paid.account, 50, tutor="Dr. Maria Keller", subject="Mathematics")
        use(paid.account, 90, tutor="Jon Park", subject="Physics")
        dispute = open_dispute(paid, stripe_dispute)

        prefill = dispute_evidence_prefill(dispute=dispute)

        assert list(prefill) == list(EVIDENCE_FIELDS)
        documentation = prefill["service_documentation"]
        assert "50 min · Dr. Maria Keller · Mathematics" in documentation
        assert "1 h 30 min · Jon Park · Physics" in documentation
        assert "Chemistry" not in documentation  # a session on another lot is not evidence for this one
        assert "2.33 h of the 10 h bought were used" in documentation
        today = date_text(timezone.localdate())
        assert prefill["service_date"] == f"Hours available from {today}; sessions on {today}."
        assert prefill["receipt"] == paid.receipt.number
        assert "Standard" in prefill["product_description"] and "€150.00" in prefill["product_description"]
        assert "valid for 90 days" in prefill["product_description"]
        assert "Card Visa 4242 saved" in prefill["access_activity_log"]
        assert "Paid €150.00 for Standard (the disputed payment)" in prefill["access_activity_log"]
        assert prefill["uncategorized_text"] == ""

    def test_it_quotes_the_messages_we_sent_about_the_payment(self, paid, dispute):
        payment_notify(payment=paid)

        messages = messages_about_payment(payment=paid)
        communication = dispute_evidence_prefill(dispute=dispute, messages=messages)["customer_communication"]

        assert communication.startswith(f"Messages we sent to {paid.account.user.email} about this payment:")
        assert "10 h added: Your payment for Standard (€150.00) went through" in communication

    def test_saved_evidence_wins_field_by_field(self, paid, dispute, staff_user):
        dispute_evidence_save(
            dispute=dispute, evidence={"product_description": "Our words", "receipt": ""}, actor=staff_user
        )

        prefill = dispute_evidence_prefill(dispute=Dispute.objects.get(pk=dispute.pk))

        assert prefill["product_description"] == "Our words"
        assert prefill["receipt"] == ""  # cleared by staff: stays cleared
        assert prefill["access_activity_log"].startswith(f"Account {paid.account.user.email}")


class TestSave:
    def test_it_saves_a_draft_of_known_fields_trimmed_and_capped(self, dispute, staff_user):
        dispute_evidence_save(
            dispute=dispute,
            evidence={
                "product_description": "  Ten hours of tutoring.  \n",
                "uncategorized_text": "x" * (EVIDENCE_MAX_CHARS + 500),
                "billing_address": "not a field of the form",
            },
            actor=staff_user,
            ip_address="203.0.113.7",
        )

        saved = Dispute.objects.get(pk=dispute.pk)
        assert saved.evidence == {
            "product_description": "Ten hours of tutoring.",
            "uncategorized_text": "x" * EVIDENCE_MAX_CHARS,
        }
        assert saved.evidence_saved_at is not None and saved.evidence_submitted_at is None
        entry = AuditEntry.objects.get(action="dispute.evidence_save")
        assert entry.after["product_description"] == "Ten hours of tutoring."
        assert (entry.target_id, entry.payment_id, entry.ip_address) == (
            str(dispute.pk),
            dispute.payment_id,
            "203.0.113.7",
        )

    def test_a_second_save_keeps_fields_it_does_not_mention(self, dispute, staff_user):
        dispute_evidence_save(dispute=dispute, evidence={"service_date": "3 March"}, actor=staff_user)
        dispute_evidence_save(dispute=dispute, evidence={"uncategorized_text": "Note"}, actor=staff_user)

        assert Dispute.objects.get(pk=dispute.pk).evidence == {"service_date": "3 March", "uncategorized_text": "Note"}

    def test_it_is_refused_after_the_due_date(self, paid, staff_user):
        overdue = dispute_object(paid, evidence_details={"due_by": int(time.time()) - 3600, "submission_count": 0})
        dispute = open_dispute(paid, overdue)

        with pytest.raises(DisputeRefused, match=r"The evidence was due on .*; Stripe no longer accepts it\."):
            dispute_evidence_save(dispute=dispute, evidence={"service_date": "3 March"}, actor=staff_user)

        assert Dispute.objects.get(pk=dispute.pk).evidence == {}
        assert actions() == []

    def test_it_is_refused_on_a_closed_dispute(self, paid, stripe_dispute, staff_user):
        dispute = open_dispute(paid, stripe_dispute | {"status": "won"})

        with pytest.raises(DisputeRefused, match=r"closed \(won\); Stripe no longer takes evidence"):
            dispute_evidence_save(dispute=dispute, evidence={"service_date": "3 March"}, actor=staff_user)

        assert Dispute.objects.get(pk=dispute.pk).evidence_saved_at is None


class TestSubmit:
    def test_it_uploads_the_documents_sends_the_fields_and_marks_the_dispute_submitted(
        self, paid, dispute, stripe, staff_user
    ):
        evidence = dispute_evidence_prefill(dispute=dispute) | {
            "customer_communication": "3 March: we emailed the receipt.",
            "service_documentation": "03 Mar 2026 · 50 min · Dr. Maria Keller · Mathematics",
        }

        submitted = dispute_evidence_submit(dispute=dispute, evidence=evidence, actor=staff_user)

        [update] = stripe.sent("update")
        uploads = stripe.sent("upload")
        assert update["submit"] == "true"
        assert update["evidence[product_description]"] == evidence["product_description"]
        assert update["evidence[access_activity_log]"] == evidence["access_activity_log"]
        assert update["evidence[service_date]"] == evidence["service_date"]
        assert "evidence[uncategorized_text]" not in update  # blank fields are not sent
        assert {upload["purpose"] for upload in uploads} == {"dispute_evidence"}
        # The file part's own label is application/octet-stream whatever we pass (stripe-python
        # writes it so); Stripe reads the type from the bytes and the name, so those are checked.
        by_name = {upload["file"]["filename"]: upload["file"]["content"] for upload in uploads}
        assert set(by_name) == {
            f"{DISPUTE_ID}-customer_communication.pdf",
            f"{DISPUTE_ID}-service_documentation.pdf",
            paid.receipt.filename,
        }
        assert all(content.startswith(b"%PDF-") for content in by_name.values())
        assert "Dr. Maria Keller" in pdf_text(by_name[f"{DISPUTE_ID}-service_documentation.pdf"])
        assert "we emailed the receipt" in pdf_text(by_name[f"{DISPUTE_ID}-customer_communication.pdf"])
        assert paid.receipt.number in pdf_text(by_name[paid.receipt.filename])
        file_ids = {upload["file"]["filename"]: upload["answered_id"] for upload in uploads}
        assert update["evidence[receipt]"] == file_ids[paid.receipt.filename]
        assert update["evidence[service_documentation]"] == file_ids[f"{DISPUTE_ID}-service_documentation.pdf"]
        assert update["evidence[customer_communication]"] == file_ids[f"{DISPUTE_ID}-customer_communication.pdf"]

        submitted.refresh_from_db()
        assert submitted.status == "under_review" and submitted.evidence_submitted_at is not None
        assert submitted.evidence["customer_communication"] == "3 March: we emailed the receipt."
        assert submitted.minutes_held == 600 and lot_minutes(paid) == 0  # still held while Stripe reviews
        assert actions() == ["dispute.evidence_save", "dispute.evidence_submit"]
        assert AuditEntry.objects.get(action="dispute.evidence_submit").after["status"] == "under_review"

    def test_after_the_due_date_it_is_refused_and_nothing_is_sent(self, localstripe, settings, paid, staff_user):
        overdue = dispute_object(paid, evidence_details={"due_by": int(time.time()) - 60, "submission_count": 0})
        dispute = open_dispute(paid, overdue)

        with (
            stripe_disputes(localstripe, settings, overdue) as stripe,
            pytest.raises(DisputeRefused, match="was due on"),
        ):
            dispute_evidence_submit(dispute=dispute, evidence={"service_date": "3 March"}, actor=staff_user)

        assert stripe.requests == []
        assert Dispute.objects.get(pk=dispute.pk).evidence_submitted_at is None

    def test_a_second_submission_is_refused(self, dispute, stripe, staff_user):
        dispute_evidence_submit(dispute=dispute, evidence={"service_date": "3 March"}, actor=staff_user)

        with pytest.raises(DisputeRefused, match="The evidence was submitted on .*; Stripe takes one submission"):
            dispute_evidence_submit(dispute=dispute, evidence={"service_date": "4 March"}, actor=staff_user)

        assert len(stripe.sent("update")) == 1
        assert Dispute.objects.get(pk=dispute.pk).evidence == {"service_date": "3 March"}

    def test_nothing_to_submit_is_refused(self, dispute, stripe, staff_user):
        with pytest.raises(DisputeRefused, match="no evidence to submit"):
            dispute_evidence_submit(dispute=dispute, evidence={"service_date": "  "}, actor=staff_user)

        assert stripe.requests == []

    @pytest.mark.parametrize(
        ("status", "message"),
        [
            (500, "Stripe did not answer, so the evidence may or may not have reached it. The draft is saved"),
            (400, "Stripe did not take the evidence: This dispute is already closed. The draft is saved and was not"),
        ],
    )
    def test_when_stripe_fails_the_draft_stays_saved_and_unsubmitted(
        self, dispute, stripe, staff_user, status, message
    ):
        stripe.fail("update", status, "This dispute is already closed.")

        with pytest.raises(DisputeProviderFailed) as failure:
            dispute_evidence_submit(dispute=dispute, evidence={"service_date": "3 March"}, actor=staff_user)

        assert message in str(failure.value)
        assert failure.value.maybe_sent is (status == 500)
        assert len(stripe.sent("update")) == 1
        dispute.refresh_from_db()
        assert dispute.evidence == {"service_date": "3 March"}
        assert dispute.evidence_submitted_at is None and dispute.status == "needs_response"
        assert actions() == ["dispute.evidence_save", "dispute.evidence_submit_failed"]

    def test_a_failed_upload_submits_nothing(self, dispute, stripe, staff_user):
        stripe.fail("upload", 500)

        with pytest.raises(DisputeProviderFailed):
            dispute_evidence_submit(dispute=dispute, evidence={"receipt": "2026-000001"}, actor=staff_user)

        assert len(stripe.sent("upload")) == 1 and stripe.sent("update") == []
        assert Dispute.objects.get(pk=dispute.pk).evidence_submitted_at is None


class TestAccept:
    def test_it_closes_the_dispute_and_the_held_hours_are_gone_for_good(self, paid, stripe_dispute, stripe, staff_user):
        use(paid.account, 100)
        dispute = open_dispute(paid, stripe_dispute)

        accepted = dispute_accept(dispute=dispute, actor=staff_user, reason="The student confirmed the chargeback.")

        assert stripe.sent("close") == [{}]
        assert (accepted.status, accepted.closed) == ("lost", True) and accepted.accepted_at is not None
        assert list(LedgerEntry.objects.filter(lot=paid.lot).values_list("kind", "minutes")) == [
            ("credit", 600),
            ("usage", -100),
            ("dispute_hold", -500),
        ]
        assert lot_minutes(paid) == 0
        entry = AuditEntry.objects.get(action="dispute.accept")
        assert entry.reason == "The student confirmed the chargeback."
        assert (entry.before["status"], entry.after["status"]) == ("needs_response", "lost")

    def test_a_dispute_whose_funds_had_not_left_yet_loses_its_hours_on_accept(
        self, localstripe, settings, paid, staff_user
    ):
        not_withdrawn = samples.dispute(paid, dispute_id=DISPUTE_ID)
        dispute = dispute_record(payment=paid, dispute_object=not_withdrawn, event_type="charge.dispute.created")
        assert lot_minutes(paid) == 600

        with stripe_disputes(localstripe, settings, not_withdrawn):
            dispute_accept(dispute=dispute, actor=staff_user, reason="No evidence")

        assert LedgerEntry.objects.filter(lot=paid.lot, kind="dispute_hold").get().minutes == -600
        assert lot_minutes(paid) == 0

    def test_a_late_event_after_accepting_gives_nothing_back(self, paid, dispute, stripe, staff_user):
        dispute_accept(dispute=dispute, actor=staff_user, reason="No evidence")

        dispute_record(
            payment=paid,
            dispute_object=dispute_object(paid, status="needs_response"),
            event_type="charge.dispute.funds_reinstated",
        )

        assert lot_minutes(paid) == 0 and not LedgerEntry.objects.filter(kind="dispute_release").exists()

    def test_it_is_refused_when_the_dispute_is_closed(self, paid, stripe_dispute, stripe, staff_user):
        dispute = open_dispute(paid, stripe_dispute | {"status": "lost"})

        with pytest.raises(DisputeRefused, match=r"already closed \(lost\)"):
            dispute_accept(dispute=dispute, actor=staff_user, reason="No evidence")

        assert stripe.requests == [] and actions() == []

    def test_it_needs_a_reason(self, dispute, stripe, staff_user):
        with pytest.raises(DisputeRefused, match="Give a reason"):
            dispute_accept(dispute=dispute, actor=staff_user, reason="   ")

        assert stripe.requests == []

    def test_evidence_cannot_change_after_accepting(self, dispute, stripe, staff_user):
        dispute_accept(dispute=dispute, actor=staff_user, reason="No evidence")

        with pytest.raises(DisputeRefused, match="This dispute was accepted on"):
            dispute_evidence_save(dispute=dispute, evidence={"service_date": "3 March"}, actor=staff_user)

    def test_when_stripe_fails_the_dispute_stays_open(self, dispute, stripe, staff_user):
        stripe.fail("close", 500)

        with pytest.raises(DisputeProviderFailed, match="may or may not be closed"):
            dispute_accept(dispute=dispute, actor=staff_user, reason="No evidence")

        dispute.refresh_from_db()
        assert (dispute.closed, dispute.accepted_at) == (False, None)
        assert actions() == ["dispute.accept_failed"]
