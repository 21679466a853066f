"""The staff console in Chromium: staff sign in with a password and a TOTP code, then refund,
answer a dispute, clear a fraud flag and retry a webhook event as they would, through HTMX dialogs
and row swaps. Each test checks what the person sees and what the database holds afterwards.

Payments are real charges on localstripe; disputes and fraud warnings come from Stripe-shaped
objects through the domain functions the webhooks use; Stripe's dispute and file endpoints, which
localstripe lacks, are stubbed at the HTTP boundary."""

import re
import time

from playwright.sync_api import expect

from billing import ledger, samples
from billing.disputes.holds import dispute_record
from billing.events import webhook_event_ingest
from billing.fraud.rules import fraud_flag_raise
from billing.models import AuditEntry, FraudFlag, Lot, Refund, WebhookEvent
from billing.tests.builders import (
    PASSWORD,
    make_console_user,
    make_paid_payment,
    make_student,
    totp_code,
    use,
    verified_user,
)
from billing.tests.stripe_stubs import stripe_disputes
from e2e.navigation import follow_link

PAYER = "payer@example.com"
FINANCE = "fiona.finance@example.com"
SUPPORT = "sol.support@example.com"
# A page that reloads loses this; an HTMX swap keeps it.
SAME_PAGE = "window.__sameDocument = 'still here'"
STILL_SAME_PAGE = "() => window.__sameDocument"


def password_step(page, live_server, email, path="/console/"):
    """Open `path` signed out and give email and password on the sign-in page it leads to."""
    page.goto(f"{live_server.url}{path}")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def code_step(page, code=None):
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    if code is None:
        # A code read in the last moments of its 30 s window may have expired when it arrives.
        left = 30 - time.time() % 30
        if left < 3:
            time.sleep(left + 0.2)
        code = totp_code()
    page.locator("input[name=code]").fill(code)
    page.get_by_role("button", name="Sign In").click()


def console_sign_in(page, live_server, email, path="/console/"):
    """Sign in as staff do (password, then the TOTP code) and land on `path`."""
    password_step(page, live_server, email, path)
    code_step(page)
    page.wait_for_url(f"{live_server.url}{path}")
    return page


def dialog(page):
    return page.locator("#action-dialog")


def test_finance_refunds_part_of_a_payment(page, live_server, localstripe, screenshot):
    payer = make_student(PAYER)
    payment = make_paid_payment(localstripe, account=payer)  # Standard: 10 h for €150.00
    use(payer, 120)  # 8 h of the package left
    make_paid_payment(localstripe, account=make_student("someone.else@example.com"))
    make_console_user(FINANCE, role="Finance")
    console_sign_in(page, live_server, FINANCE)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Payments").click()
    rows = page.locator("#console-table tbody tr")
    expect(rows).to_have_count(2)
    page.evaluate(SAME_PAGE)
    page.get_by_label("Search").fill("payer@")
    page.get_by_label("Search").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(PAYER)
    expect(page).to_have_url(re.compile(r"[?&]q=payer%40"))
    assert page.evaluate(STILL_SAME_PAGE) == "still here", "the search swaps the table, not the page"

    # The swap's own requests settle first (on a loaded machine a click during them was lost once).
    page.wait_for_load_state("networkidle")
    rows.first.get_by_role("link").first.click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name=f"Payment {payment.pk}")).to_be_visible(timeout=15_000)
    expect(page).to_have_url(f"{live_server.url}/console/payments/{payment.pk}/")
    expect(page.locator("h1")).to_have_count(1)  # a page of its own, not one swapped into the table
    follow_link(page, "Refund")
    expect(dialog(page)).to_be_visible()
    expect(dialog(page).get_by_label("Amount to refund")).to_have_value("150.00")
    expect(dialog(page).get_by_label("Hours to take back")).to_have_value("8:00")
    dialog(page).get_by_label("Amount to refund").fill("50.00")
    dialog(page).get_by_label("Hours to take back").fill("3")
    dialog(page).get_by_label("Reason").fill("Two sessions cancelled by the tutor.")
    dialog(page).get_by_role("button", name="Review the refund").click()
    expect(dialog(page)).to_contain_text(f"Refund €50.00 to {PAYER}'s card and take back 3 h from their package.")
    assert Refund.objects.count() == 0, "nothing is refunded before the confirmation"
    screenshot(page, "console-refund-review")
    dialog(page).get_by_role("button", name="Confirm the refund").click()

    expect(page.locator(".messages")).to_contain_text("Refunded €50.00; 3 h taken back.")
    expect(dialog(page)).not_to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("Refund (succeeded)")
    expect(page.locator(".timeline")).to_contain_text("€50.00, 3 h taken back")
    facts = page.locator(".facts")
    expect(facts.locator("div", has_text="Hours left on its package")).to_contain_text("5 h")
    expect(facts.locator("div", has_text="Refundable")).to_contain_text("€100.00")
    expect(page.get_by_role("link", name="Refund", exact=True)).to_be_visible()  # €100.00 can still be refunded
    screenshot(page, "console-refund-done")

    refund = Refund.objects.get()
    assert (refund.status, refund.amount_cents, refund.minutes_reversed) == ("succeeded", 5000, 180)
    assert refund.reason == "Two sessions cancelled by the tutor."
    lot = Lot.objects.get(payment=payment)
    assert lot.minutes_remaining == 600 - 120 - 180
    entry = AuditEntry.objects.get(action="refund.create")
    assert entry.actor_email == FINANCE and entry.after["amount_cents"] == 5000 and entry.after["minutes"] == 180


def test_finance_saves_then_submits_dispute_evidence(page, live_server, localstripe, settings, screenshot):
    payment = make_paid_payment(localstripe, account=make_student(PAYER))
    use(payment.account, 90)
    stripe_dispute = samples.dispute(payment, withdrawn=True)
    dispute = dispute_record(payment=payment, dispute_object=stripe_dispute, event_type="charge.dispute.created")
    assert dispute.minutes_held  # the unused hours are held while the bank has the money
    make_console_user(FINANCE, role="Finance")

    with stripe_disputes(localstripe, settings, stripe_dispute) as stripe:
        console_sign_in(page, live_server, FINANCE)
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Disputes").click()
        page.locator("#console-table tbody tr").first.get_by_role("link").first.click()
        expect(page).to_have_url(f"{live_server.url}/console/disputes/{dispute.pk}/")
        expect(page.get_by_role("heading", name=f"Dispute on payment {payment.pk}")).to_be_visible()
        expect(page.locator("h1")).to_have_count(1)

        form = page.locator("form.evidence-form")
        expect(form.get_by_label("Product description")).to_have_value(re.compile(r"^Standard: a prepaid package"))
        expect(form.get_by_label("Service documentation")).to_have_value(re.compile("1 h 30 min"))
        expect(form.get_by_label("Receipt")).not_to_have_value("")
        other = form.locator("[name=uncategorized_text]")  # labelled "Uncategorized text" (see the report)
        expect(other).to_have_value("")
        other.fill("The student booked again after the charge, from the same address.")
        form.get_by_role("button", name="Save draft").click()

        expect(page.locator(".messages")).to_contain_text("Draft saved.")
        expect(other).to_have_value("The student booked again after the charge, from the same address.")
        expect(page.locator(".facts")).to_contain_text("draft saved")
        assert stripe.requests == [], "a draft stays with us"

        page.once("dialog", lambda confirm: confirm.accept())
        form.get_by_role("button", name="Submit to Stripe").click()

        expect(page.locator(".messages")).to_contain_text("Evidence submitted to Stripe.")
        expect(page.get_by_text("This evidence can no longer be changed.")).to_be_visible()
        expect(other).to_be_disabled()
        expect(form.get_by_role("button", name="Submit to Stripe")).to_be_disabled()
        expect(form.get_by_role("button", name="Save draft")).to_be_disabled()
        expect(page.locator(".facts")).to_contain_text("submitted")
        expect(page.locator("h1 .badge")).to_have_text("Under review")
        screenshot(page, "console-dispute-submitted")

    [update] = stripe.sent("update")
    assert update["submit"] == "true"
    assert update["evidence[uncategorized_text]"] == "The student booked again after the charge, from the same address."
    assert update["evidence[product_description]"].startswith("Standard: a prepaid package")
    uploaded = {upload["answered_id"] for upload in stripe.sent("upload")}
    assert update["evidence[receipt]"] in uploaded and update["evidence[service_documentation]"] in uploaded
    dispute.refresh_from_db()
    assert dispute.evidence_submitted_at is not None and dispute.status == "under_review"
    assert dispute.evidence["uncategorized_text"].startswith("The student booked again")
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "dispute.evidence_save",
        "dispute.evidence_save",
        "dispute.evidence_submit",
    ]


def test_support_clears_a_fraud_flag_in_place(page, live_server, localstripe, screenshot):
    payment = make_paid_payment(localstripe, account=make_student(PAYER))
    flag = fraud_flag_raise(payment=payment, warning_object=samples.early_fraud_warning(payment))
    support = make_console_user(SUPPORT, role="Support")
    console_sign_in(page, live_server, SUPPORT)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Fraud flags").click()
    row = page.locator(f"#flag-{flag.pk}")
    expect(row).to_contain_text(PAYER)
    expect(row).to_contain_text("made_with_stolen_card")
    expect(row.locator(".badge")).to_have_text("Open")
    expect(row.get_by_role("link", name="Clear")).to_be_visible()
    expect(row.get_by_role("link", name="Note")).to_be_visible()
    expect(row.get_by_role("link", name="Confirm")).to_have_count(0)  # confirming fraud is Finance's
    screenshot(page, "console-fraud-queue")
    page.evaluate(SAME_PAGE)

    row.get_by_role("link", name="Clear").click()
    expect(dialog(page)).to_be_visible()
    expect(dialog(page).get_by_role("heading")).to_contain_text("Clear flag")
    dialog(page).get_by_label("Reason").fill("The card holder confirmed the purchase by phone.")
    dialog(page).get_by_role("button", name="Clear the flag").click()

    expect(dialog(page)).not_to_be_visible()
    expect(row.locator(".badge")).to_have_text("Cleared")
    expect(row).to_contain_text(f"Cleared by {SUPPORT}")
    expect(row.get_by_role("link", name="Clear")).to_have_count(0)
    expect(page.locator("#row-message")).to_have_text("Flag cleared.")
    assert page.evaluate(STILL_SAME_PAGE) == "still here", "the row is swapped, the page is not reloaded"
    screenshot(page, "console-fraud-cleared")

    flag.refresh_from_db()
    assert flag.status == FraudFlag.Status.CLEARED and flag.resolved_by == support
    entry = AuditEntry.objects.get(action="fraud_flag.clear")
    assert entry.actor_email == SUPPORT and entry.reason == "The card holder confirmed the purchase by phone."


def test_support_retries_a_failed_webhook_event(page, live_server, localstripe, screenshot):
    payment = make_paid_payment(localstripe, account=make_student(PAYER))
    intent = {
        "id": payment.stripe_payment_intent_id,
        "object": "payment_intent",
        "metadata": {"payment_id": str(payment.pk)},  # ours, as the portal's charges carry
    }
    event, _ = webhook_event_ingest(event=samples.event("payment_intent.succeeded", intent))
    webhook_event_ingest(event=samples.event("customer.updated", {"id": "cus_elsewhere", "object": "customer"}))
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    attempts = event.attempts
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=WebhookEvent.Status.FAILED,
        last_error="Traceback (most recent call last):\n  ...\nOperationalError: database is locked",
    )
    make_console_user(SUPPORT, role="Support")
    console_sign_in(page, live_server, SUPPORT)

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Webhooks").click()
    rows = page.locator("#console-table tbody tr")
    expect(rows).to_have_count(2)
    page.evaluate(SAME_PAGE)
    page.get_by_role("checkbox", name="Failed").check()
    expect(rows).to_have_count(1)
    row = page.locator(f"#event-{event.pk}")
    expect(row).to_contain_text("payment_intent.succeeded")
    expect(row).to_contain_text("OperationalError: database is locked")
    expect(row.locator(".badge")).to_have_text("Failed")
    screenshot(page, "console-webhooks-failed")

    row.get_by_role("button", name="Retry").click()

    expect(row.locator(".badge")).to_have_text("Processed")
    expect(row.get_by_role("button", name="Retry")).to_have_count(0)
    expect(row).not_to_contain_text("OperationalError")
    expect(row.locator("td[data-label=Attempts]")).to_have_text(str(attempts + 1))
    expect(page.locator("#row-message")).to_have_text("Retried.")
    assert page.evaluate(STILL_SAME_PAGE) == "still here", "the row is swapped, the page is not reloaded"
    screenshot(page, "console-webhooks-retried")

    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and event.attempts == attempts + 1
    assert event.last_error == ""
    entry = AuditEntry.objects.get(action="webhook_event.retry")
    assert entry.actor_email == SUPPORT and entry.before == {"status": "failed"}


def test_a_student_gets_404_from_the_console(page, live_server, transactional_db, screenshot):
    ledger.account_open(user=verified_user("ana@example.com"))
    page.goto(f"{live_server.url}/")
    page.get_by_label("Email").fill("ana@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(f"{live_server.url}/")

    response = page.goto(f"{live_server.url}/console/")

    assert response.status == 404
    expect(page.get_by_role("navigation", name="Console")).to_have_count(0)
    screenshot(page, "console-student-404")


def test_staff_pass_the_totp_step_before_the_console_shows(page, live_server, transactional_db, screenshot):
    make_console_user(FINANCE, role="Finance")

    password_step(page, live_server, FINANCE)
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    expect(page.get_by_role("navigation", name="Console")).to_have_count(0)
    screenshot(page, "console-totp-step")
    code = totp_code()
    wrong = f"{(int(code) + 500_000) % 1_000_000:06d}"
    code_step(page, wrong)
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/"))
    expect(page.get_by_text("Incorrect code.")).to_be_visible()
    # Walking away from the code step does not open the console: the password alone signs no one in.
    page.goto(f"{live_server.url}/console/")
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/"))
    expect(page.get_by_role("navigation", name="Console")).to_have_count(0)

    code_step(page)

    page.wait_for_url(f"{live_server.url}/console/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("navigation", name="Console")).to_be_visible()
    screenshot(page, "console-overview")
