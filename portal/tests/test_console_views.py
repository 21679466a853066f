"""The console's pages and actions, as staff use them: what Support and Finance may each do, what a
bad input answers, and that every action lands in the audit log.

Payments are real charges on localstripe; disputes and fraud warnings come from Stripe-shaped
objects through the same domain functions the webhooks use."""

import csv
import io
import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing import samples
from billing.disputes.holds import dispute_record
from billing.events import webhook_event_ingest
from billing.fraud.rules import fraud_flag_raise
from billing.models import AuditEntry, FraudFlag, LedgerEntry, Payment, Refund, WebhookEvent
from billing.tests.builders import PASSWORD, credit, make_paid_payment, make_student, use
from portal.tests.htmx import client_events, client_redirect

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(localstripe):
    return make_paid_payment(localstripe, account=make_student("payer@example.com"))


def page(client, name, *args, **query):
    return client.get(reverse(f"console:{name}", args=args), query)


def text(response):
    return response.content.decode()


def confirmed(client, url, form):
    """Post the refund form, then its confirmation (which carries the key the review step issued)."""
    review = client.post(url, form)
    key = re.search(r'name="key" value="([^"]+)"', text(review))
    assert key, "the review step should issue a confirmation key"
    return client.post(url, form | {"confirm": "1", "key": key.group(1)}, HTTP_HX_REQUEST="true")


def audit_actions():
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


class TestFinanceOnlyActions:
    """Support reads and helps; money and hours move only for Finance (every Finance-only route
    answers Support 403: test_console_access.py walks them all)."""

    def test_support_may_clear_a_flag_note_it_and_retry_webhooks(self, support_client, paid):
        flag = fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        url = reverse("console:flag_clear", args=[flag.pk])
        response = support_client.post(url, {"reason": "Card holder confirmed by phone."}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        flag.refresh_from_db()
        assert flag.status == FraudFlag.Status.CLEARED
        assert audit_actions() == ["fraud_flag.clear"]

    def test_support_sees_dispute_evidence_read_only_and_cannot_post_it(self, support_client, paid):
        dispute = dispute_record(
            payment=paid, dispute_object=samples.dispute(paid, withdrawn=True), event_type="charge.dispute.created"
        )
        response = page(support_client, "dispute", dispute.pk)
        assert "Only the Finance team can edit and submit evidence." in text(response)
        assert (
            support_client.post(reverse("console:dispute", args=[dispute.pk]), {"product_description": "x"}).status_code
            == 403
        )
        dispute.refresh_from_db()
        assert dispute.evidence_saved_at is None


class TestPayments:
    def test_the_table_searches_by_email_and_payment_intent(self, support_client, localstripe, paid):
        other = make_paid_payment(localstripe, account=make_student("someone.else@example.com"))
        by_email = text(page(support_client, "payments", q="payer@"))
        assert "payer@example.com" in by_email and "someone.else@example.com" not in by_email
        by_intent = text(page(support_client, "payments", q=other.stripe_payment_intent_id))
        assert "someone.else@example.com" in by_intent and "payer@example.com" not in by_intent

    def test_filters_by_status_and_amount(self, support_client, paid):
        assert "payer@example.com" in text(page(support_client, "payments", status="succeeded", amount_min="150"))
        assert "payer@example.com" not in text(page(support_client, "payments", amount_max="149.99"))
        assert "payer@example.com" not in text(page(support_client, "payments", status="failed"))

    @pytest.mark.parametrize(
        "query", [{"amount_min": "lots"}, {"created_from": "yesterday"}, {"status": "bogus"}, {"payments-page": "x"}]
    )
    def test_bad_filter_input_is_explained_not_a_500(self, support_client, paid, query):
        response = page(support_client, "payments", **query)
        assert response.status_code == 200

    def test_an_htmx_filter_request_gets_only_the_table(self, support_client, paid):
        response = support_client.get(
            reverse("console:payments"), {"status": "succeeded"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="console-table"
        )
        assert text(response).lstrip().startswith('<div id="console-table"')
        assert "payer@example.com" in text(response)

    def test_the_csv_export_streams_the_filtered_rows(self, support_client, localstripe, paid):
        make_paid_payment(localstripe, account=make_student("not.in.export@example.com"))
        response = page(support_client, "payments_export", q="payer@")
        assert response.streaming and response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows[0][:3] == ["id", "created_at", "email"]
        assert [row[2] for row in rows[1:]] == ["payer@example.com"]
        assert rows[1][4:7] == ["150.00", "EUR", "succeeded"]

    def test_an_export_with_a_filter_that_is_not_valid_exports_nothing_and_says_why(self, support_client, paid):
        response = page(support_client, "payments_export", q="payer@", amount_min="lots")
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("console:payments") + "?")
        page_text = text(support_client.get(response["Location"]))
        assert "Nothing was exported: correct the filters below" in page_text

    def test_the_detail_tells_the_payments_whole_story(
        self, support_client, client, paid, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            webhook_event_ingest(
                event=samples.event(
                    "payment_intent.succeeded", {"id": paid.stripe_payment_intent_id, "object": "payment_intent"}
                )
            )
        fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        body = text(page(support_client, "payment", paid.pk))
        assert "Purchase attempt started" in body and "Payment succeeded" in body
        assert "Stripe event payment_intent.succeeded" in body
        assert f"Receipt {paid.receipt.number}" in body
        assert "Fraud flag: Stripe early fraud warning" in body
        assert "Hours: Purchase" in body

    def test_another_payment_id_is_404(self, support_client):
        assert page(support_client, "payment", 999999).status_code == 404


class TestRefunds:
    def test_the_form_offers_the_refundable_amount_and_the_unused_hours(self, finance_client, paid):
        use(paid.account, 240)
        body = text(page(finance_client, "refund_create", paid.pk))
        assert 'value="150.00"' in body
        assert 'value="6:00"' in body  # 10 h bought, 4 h used: 6 h left to take back

    def test_a_refund_is_confirmed_before_stripe_is_called(self, finance_client, localstripe, paid):
        url = reverse("console:refund_create", args=[paid.pk])
        form = {"amount": "75.00", "hours": "5", "reason": "Half the course cancelled."}
        review = finance_client.post(url, form, HTTP_HX_REQUEST="true")
        assert "Confirm the refund" in text(review) and not Refund.objects.exists()
        done = confirmed(finance_client, url, form)
        assert client_redirect(done) == reverse("console:payment", args=[paid.pk])
        refund = Refund.objects.get()
        assert (refund.amount_cents, refund.status, refund.minutes_reversed) == (7500, "succeeded", 300)
        paid.lot.refresh_from_db()
        assert paid.lot.minutes_remaining == 300
        assert LedgerEntry.objects.filter(lot=paid.lot, kind="reversal").count() == 1
        assert refund.credit_note.number.startswith("CN-")
        entry = AuditEntry.objects.get(action="refund.create")
        assert (entry.actor_email, entry.payment_id, entry.reason) == (
            "fiona.finance@example.com",
            paid.pk,
            form["reason"],
        )
        assert entry.ip_address == "127.0.0.1"

    @pytest.mark.parametrize(
        ("form", "message"),
        [
            ({"amount": "150.01", "hours": "1"}, "At most €150.00 can still be refunded."),
            ({"amount": "10", "hours": "10.5"}, "Only 10 h of this package are left to take back."),
            ({"amount": "10", "hours": "0.001"}, "Enter whole minutes"),
            ({"amount": "-5", "hours": "1"}, "greater than or equal to 0.01"),
            ({"amount": "ten", "hours": "1"}, "Enter a number."),
        ],
    )
    def test_bad_amounts_and_hours_are_refused_with_a_reason(self, finance_client, paid, form, message):
        url = reverse("console:refund_create", args=[paid.pk])
        response = finance_client.post(url, form | {"reason": "Test", "confirm": "1"})
        assert response.status_code == 200
        assert message in text(response)
        assert not Refund.objects.exists()

    def test_a_refund_needs_a_reason(self, finance_client, paid):
        response = finance_client.post(
            reverse("console:refund_create", args=[paid.pk]),
            {"amount": "10", "hours": "1", "reason": " ", "confirm": "1"},
        )
        assert "This field is required." in text(response)
        assert not Refund.objects.exists()

    def test_a_second_refund_cannot_exceed_what_the_first_left(self, finance_client, paid):
        url = reverse("console:refund_create", args=[paid.pk])
        confirmed(finance_client, url, {"amount": "100", "hours": "2", "reason": "First"})
        response = finance_client.post(url, {"amount": "60", "hours": "1", "reason": "Second", "confirm": "1"})
        assert "At most €50.00 can still be refunded." in text(response)
        assert Refund.objects.count() == 1

    def test_a_confirmation_posted_twice_refunds_once(self, finance_client, localstripe, paid):
        url = reverse("console:refund_create", args=[paid.pk])
        form = {"amount": "20", "hours": "1", "reason": "Double click"}
        review = finance_client.post(url, form)
        key = re.search(r'name="key" value="([^"]+)"', text(review)).group(1)
        for _ in range(2):
            finance_client.post(url, form | {"confirm": "1", "key": key})
        assert Refund.objects.count() == 1
        assert len(localstripe.get("/v1/refunds")["data"]) == 1
        assert LedgerEntry.objects.filter(kind="reversal").count() == 1

    def test_a_confirmation_without_its_key_only_shows_the_review_again(self, finance_client, paid):
        url = reverse("console:refund_create", args=[paid.pk])
        response = finance_client.post(url, {"amount": "20", "hours": "1", "reason": "x", "confirm": "1"})
        assert "Confirm the refund" in text(response)
        assert not Refund.objects.exists()


class TestDisputes:
    @pytest.fixture
    def dispute(self, paid):
        return dispute_record(
            payment=paid, dispute_object=samples.dispute(paid, withdrawn=True), event_type="charge.dispute.created"
        )

    def test_the_table_counts_down_to_the_evidence_due_date(self, support_client, dispute):
        body = text(page(support_client, "disputes"))
        assert "days left" in body and "payer@example.com" in body

    def test_the_evidence_form_is_prefilled_from_our_records(self, finance_client, paid):
        use(paid.account, 90, tutor="Dr. Keller", subject="Algebra")
        dispute = dispute_record(
            payment=paid, dispute_object=samples.dispute(paid, withdrawn=True), event_type="charge.dispute.created"
        )
        body = text(page(finance_client, "dispute", dispute.pk))
        assert "Algebra" in body and "Dr. Keller" in body
        assert paid.receipt.number in body

    def test_the_access_log_lists_the_students_sign_ins(self, finance_client, dispute, paid):
        user = paid.account.user
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        signed_in = Client().post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
        assert signed_in.status_code == 302
        body = text(page(finance_client, "dispute", dispute.pk))
        assert "Signed in from 127.0.0.1" in body

    def test_a_draft_is_saved_and_audited(self, finance_client, dispute):
        response = finance_client.post(
            reverse("console:dispute", args=[dispute.pk]),
            {"product_description": "Ten hours of maths tutoring.", "save": ""},
        )
        assert response.status_code == 302
        dispute.refresh_from_db()
        assert dispute.evidence["product_description"] == "Ten hours of maths tutoring."
        assert "dispute.evidence_save" in audit_actions()

    def test_evidence_after_the_due_date_is_refused_with_the_date(self, finance_client, paid):
        overdue = samples.dispute(paid, withdrawn=True) | {
            "evidence_details": {
                "due_by": int((timezone.now() - timedelta(hours=2)).timestamp()),
                "submission_count": 0,
            }
        }
        dispute = dispute_record(payment=paid, dispute_object=overdue, event_type="charge.dispute.created")
        response = finance_client.post(
            reverse("console:dispute", args=[dispute.pk]), {"product_description": "x", "submit": ""}
        )
        assert response.status_code == 200
        assert "no longer accepts it" in text(response)
        dispute.refresh_from_db()
        assert dispute.evidence_submitted_at is None


class TestFraudFlags:
    def test_the_queue_shows_open_flags_with_their_evidence(self, support_client, paid):
        fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        body = text(page(support_client, "flags"))
        assert "payer@example.com" in body and "Stripe early fraud warning" in body

    def test_clearing_from_the_dialog_swaps_the_row_and_closes_the_dialog(self, support_client, paid):
        flag = fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        response = support_client.post(
            reverse("console:flag_clear", args=[flag.pk]),
            {"reason": "Known customer."},
            HTTP_HX_REQUEST="true",
        )
        assert response["HX-Retarget"] == f"#flag-{flag.pk}" and response["HX-Reswap"] == "outerHTML"
        assert client_events(response) == {"dialog:close"}
        assert f'id="flag-{flag.pk}"' in text(response) and "Cleared" in text(response)

    def test_confirming_blocks_the_student_who_then_sees_why(self, finance_client, client, paid):
        flag = fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        finance_client.post(reverse("console:flag_confirm", args=[flag.pk]), {"reason": "Stolen card.", "block": "on"})
        paid.account.refresh_from_db()
        assert paid.account.blocked_at is not None
        assert audit_actions()[:2] == ["fraud_flag.confirm", "account.block"] or "fraud_flag.confirm" in audit_actions()

    def test_an_action_on_a_cleared_flag_is_refused_in_words(self, support_client, paid):
        flag = fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        url = reverse("console:flag_clear", args=[flag.pk])
        support_client.post(url, {"reason": "First"})
        response = support_client.post(url, {"reason": "Again"})
        assert response.status_code == 200 and "This flag was already cleared; nothing was changed." in text(response)

    def test_an_unknown_action_is_404(self, support_client, paid):
        flag = fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        assert support_client.get(f"/console/fraud/{flag.pk}/delete/").status_code == 404


class TestWebhookLog:
    @pytest.fixture
    def failed_event(self, paid):
        stripe_event = samples.event(
            "payment_intent.succeeded", {"id": paid.stripe_payment_intent_id, "object": "payment_intent"}
        )
        event, _ = webhook_event_ingest(event=stripe_event)
        WebhookEvent.objects.filter(pk=event.pk).update(
            status="failed", attempts=3, last_error="Traceback\nKeyError: 'x'"
        )
        return event

    def test_the_table_filters_by_status_and_type(self, support_client, failed_event):
        assert "KeyError" in text(page(support_client, "webhooks", status="failed"))
        assert failed_event.stripe_event_id not in text(page(support_client, "webhooks", status="processed"))
        assert failed_event.stripe_event_id not in text(page(support_client, "webhooks", type="charge."))

    def test_the_payload_is_shown_as_pretty_json(self, support_client, failed_event):
        body = text(page(support_client, "webhook", failed_event.pk))
        assert "&quot;type&quot;: &quot;payment_intent.succeeded&quot;" in body
        assert "KeyError" in body

    def test_retrying_one_event_processes_it_and_swaps_its_row(
        self, support_client, failed_event, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = support_client.post(
                reverse("console:webhook_retry", args=[failed_event.pk]), HTTP_HX_REQUEST="true"
            )
        assert f'id="event-{failed_event.pk}"' in text(response)
        failed_event.refresh_from_db()
        assert failed_event.status in {"processed", "ignored"} and failed_event.attempts == 4
        assert audit_actions() == ["webhook_event.retry"]

    def test_retry_all_failed_queues_each_once_and_audits_once(self, support_client, failed_event):
        url = reverse("console:webhooks_retry_failed")
        asked = support_client.post(url)
        assert "1 event(s) that failed, wait or were orphaned will be processed again now." in text(asked)
        assert not AuditEntry.objects.exists(), "nothing is retried before the confirmation"
        response = support_client.post(url, {"confirm": "1"})
        assert response.status_code == 302
        assert audit_actions() == ["webhook_event.retry_all"]
        assert AuditEntry.objects.get().after == {"queued": 1}


class TestStudents:
    def test_search_finds_a_student_by_email(self, support_client, paid):
        make_student("zed@example.com")
        body = text(page(support_client, "students", q="payer"))
        assert "payer@example.com" in body and "zed@example.com" not in body

    def test_the_student_page_shows_balance_lots_payments_and_cards(self, support_client, paid):
        body = text(page(support_client, "student", paid.account_id))
        assert "10 h" in body and "Visa 4242" in body and "Standard" in body

    def test_recording_a_session_consumes_hours_and_is_audited(self, support_client):
        account = make_student("learner@example.com")
        credit(account, 600, bought_days_ago=3)
        when = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        response = support_client.post(
            reverse("console:session_create", args=[account.pk]),
            {"occurred_at": when, "duration": "1:30", "tutor": "Dr. Keller", "subject": "Physics", "key": "k1"},
        )
        assert response.status_code == 302
        account.refresh_from_db()
        assert account.balance_minutes == 510
        assert audit_actions() == ["session.record"]

    @pytest.mark.parametrize(
        ("duration", "message"), [("20", "Enter at most 12:00 (12 h)."), ("0.5001", "whole minutes"), ("", "required")]
    )
    def test_a_session_with_a_bad_duration_is_refused(self, support_client, paid, duration, message):
        when = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
        response = support_client.post(
            reverse("console:session_create", args=[paid.account_id]),
            {"occurred_at": when, "duration": duration, "tutor": "T", "subject": "S"},
        )
        assert message in text(response)

    def test_a_session_longer_than_the_balance_is_refused_in_words(self, support_client):
        account = make_student("short@example.com")
        credit(account, 60)
        when = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
        response = support_client.post(
            reverse("console:session_create", args=[account.pk]),
            {"occurred_at": when, "duration": "2", "tutor": "T", "subject": "S", "key": "k2"},
        )
        assert response.status_code == 200 and "Not enough hours" in text(response)
        account.refresh_from_db()
        assert account.balance_minutes == 60

    def test_a_manual_adjustment_needs_a_reason_and_leaves_a_ledger_entry(self, finance_client, paid):
        url = reverse("console:hours_adjust", args=[paid.account_id])
        refused = finance_client.post(url, {"lot": paid.lot.pk, "hours": "1", "reason": ""})
        assert "This field is required." in text(refused)
        finance_client.post(
            url, {"lot": paid.lot.pk, "hours": "-1:15", "reason": "Session recorded twice.", "key": "adjust-1"}
        )
        entry = LedgerEntry.objects.get(kind="adjustment")
        assert (entry.minutes, entry.reason, entry.actor.email) == (
            -75,
            "Session recorded twice.",
            "fiona.finance@example.com",
        )
        audit = AuditEntry.objects.get(action="hours.adjust")
        assert audit.before == {"minutes_remaining": 600} and audit.after == {"minutes_remaining": 525}

    def test_an_adjustment_on_another_students_lot_is_refused(self, finance_client, paid):
        stranger = make_student("stranger@example.com")
        response = finance_client.post(
            reverse("console:hours_adjust", args=[stranger.pk]), {"lot": paid.lot.pk, "hours": "1", "reason": "x"}
        )
        assert "Select a valid choice" in text(response)
        assert not LedgerEntry.objects.filter(kind="adjustment").exists()

    def test_block_and_unblock_are_audited(self, finance_client, paid):
        finance_client.post(reverse("console:student_block", args=[paid.account_id]), {"reason": "Chargebacks."})
        finance_client.post(reverse("console:student_unblock", args=[paid.account_id]), {"reason": "Resolved."})
        paid.account.refresh_from_db()
        assert paid.account.blocked_at is None
        assert audit_actions() == ["account.block", "account.unblock"]


class TestAuditLog:
    def test_entries_are_listed_filtered_and_shown_on_the_student(self, finance_client, paid):
        finance_client.post(reverse("console:student_block", args=[paid.account_id]), {"reason": "Chargebacks."})
        assert "Chargebacks." in text(page(finance_client, "audit", action="account"))
        assert "Chargebacks." not in text(page(finance_client, "audit", action="refund"))
        assert "account.block" in text(page(finance_client, "student", paid.account_id))

    def test_entries_cannot_be_changed_or_deleted(self, finance_client, paid):
        finance_client.post(reverse("console:student_block", args=[paid.account_id]), {"reason": "Chargebacks."})
        entry = AuditEntry.objects.get()
        entry.reason = "Nothing happened"
        with pytest.raises(ValueError):
            entry.save()
        with pytest.raises(ValueError):
            entry.delete()
        with pytest.raises(ValueError):
            AuditEntry.objects.all().delete()
        with pytest.raises(ValueError):
            AuditEntry.objects.update(reason="x")


class TestHardening:
    """Inputs a person or a script might send, answered in words, never with a 500."""

    @pytest.mark.parametrize("name", ["payments", "webhooks", "audit", "students", "disputes"])
    def test_an_absurd_page_number_shows_a_page_not_an_error(self, support_client, paid, name):
        assert page(support_client, name, page="99999999999999999999").status_code == 200

    def test_a_search_for_unusual_digits_finds_nothing_instead_of_failing(self, support_client, paid):
        assert page(support_client, "payments", q="²").status_code == 200
        assert page(support_client, "payments_export", q="²").status_code == 200

    @pytest.mark.parametrize("name", ["refund_send", "webhook_retry"])
    def test_post_only_actions_ask_outsiders_to_sign_in_not_405(self, client, name):
        response = client.get(reverse(f"console:{name}", args=[1]))
        assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))

    def test_a_session_dated_in_year_one_is_refused_in_words(self, support_client, paid):
        response = support_client.post(
            reverse("console:session_create", args=[paid.account_id]),
            {"occurred_at": "0001-01-01T00:10", "duration": "1", "tutor": "T", "subject": "S"},
        )
        assert response.status_code == 200 and "check the year" in text(response)

    def test_an_adjustment_reason_longer_than_the_ledger_keeps_is_refused(self, finance_client, paid):
        response = finance_client.post(
            reverse("console:hours_adjust", args=[paid.account_id]),
            {"lot": paid.lot.pk, "hours": "1", "reason": "x" * 250},
        )
        assert "at most 200 characters" in text(response)
        assert not LedgerEntry.objects.filter(kind="adjustment").exists()

    def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(self, support_client, localstripe):
        make_paid_payment(localstripe, account=make_student("=1+2@example.com"))
        response = page(support_client, "payments_export")
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows[1][2] == "'=1+2@example.com"

    def test_the_export_link_follows_the_filters_the_table_was_swapped_with(self, support_client, paid):
        response = support_client.get(
            reverse("console:payments"), {"status": "failed"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="console-table"
        )
        assert 'id="export-link"' in text(response) and "hx-swap-oob" in text(response)
        assert f"{reverse('console:payments_export')}?status=failed" in text(response)

    def test_evidence_fields_not_posted_keep_their_draft(self, finance_client, paid):
        dispute = dispute_record(
            payment=paid, dispute_object=samples.dispute(paid, withdrawn=True), event_type="charge.dispute.created"
        )
        url = reverse("console:dispute", args=[dispute.pk])
        finance_client.post(url, {"uncategorized_text": "Kept", "product_description": "First", "save": ""})
        finance_client.post(url, {"product_description": "Second", "save": ""})
        dispute.refresh_from_db()
        assert dispute.evidence["uncategorized_text"] == "Kept"
        assert dispute.evidence["product_description"] == "Second"

    def test_accepting_is_offered_only_while_stripe_waits_for_a_response(self, finance_client, paid):
        dispute = dispute_record(
            payment=paid,
            dispute_object=samples.dispute(paid, status="under_review", withdrawn=True),
            event_type="charge.dispute.updated",
        )
        assert "Accept the dispute" not in text(page(finance_client, "dispute", dispute.pk))
        response = finance_client.post(reverse("console:dispute_accept", args=[dispute.pk]), {"reason": "No evidence"})
        assert "only while the dispute needs a response" in text(response)


class TestConfirmWithRefund:
    def test_confirming_fraud_with_a_refund_refunds_the_payment_in_full(self, finance_client, localstripe, paid):
        flag = fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        finance_client.post(
            reverse("console:flag_confirm", args=[flag.pk]),
            {"reason": "Stolen card.", "block": "on", "refund": "on"},
        )
        refund = Refund.objects.get()
        assert (refund.amount_cents, refund.status, refund.minutes_reversed) == (15000, "succeeded", 600)
        assert refund.reason == "Fraud confirmed: Stolen card."
        flag.refresh_from_db()
        assert flag.status == FraudFlag.Status.CONFIRMED

    def test_a_refund_that_cannot_be_made_changes_nothing(self, finance_client, localstripe, paid):
        flag = fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid))
        Payment.objects.filter(pk=paid.pk).update(status="failed", lot=None)
        response = finance_client.post(
            reverse("console:flag_confirm", args=[flag.pk]),
            {"reason": "Stolen card.", "block": "on", "refund": "on"},
        )
        assert "nothing to refund; nothing was changed" in text(response)
        flag.refresh_from_db()
        paid.account.refresh_from_db()
        assert flag.status == FraudFlag.Status.OPEN and paid.account.blocked_at is None
        assert not AuditEntry.objects.exists()


def test_a_bad_filter_is_named_above_the_table_and_left_out(support_client, paid):
    response = support_client.get(
        reverse("console:payments"), {"amount_min": "lots"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="console-table"
    )
    body = text(response)
    assert 'id="filter-errors"' in body and "Amount from: Enter a number." in body
    assert "payer@example.com" in body  # the other filters (none) still apply
