"""Staff actions on hours in Chromium: Finance grants hours and extends a plan's packages in bulk
after a preview; Support voids a session recorded by mistake. Each through the console's dialogs and
pages as staff use them, checked in what the page says and what the database holds; the student page
is also photographed at a phone's width."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from billing.models import AuditEntry, LedgerEntry, Lot, Receipt, Usage
from billing.tests.builders import credit, make_console_user, make_plan, make_student, use
from e2e.test_console import console_sign_in, dialog

FINANCE = "fiona.finance@example.com"
SUPPORT = "sol.support@example.com"
STUDENT = "learner@example.com"
PHONE = {"width": 390, "height": 844}
# Whether the dialog's submit button is disabled at the moment htmx sends its request.
RECORD_BUTTON_STATE_WHEN_SENT = """
document.addEventListener("htmx:beforeSend", () => {
  window.__submitDisabledWhenSent = document.querySelector("#dialog-body button[type=submit]").disabled;
}, {once: true});
"""


def test_finance_grants_hours_to_a_student(page, live_server, screenshot):
    account = make_student(STUDENT)
    make_console_user(FINANCE, role="Finance")
    console_sign_in(page, live_server, FINANCE, path=f"/console/students/{account.pk}/")

    page.get_by_role("link", name="Grant hours").click()
    expect(dialog(page)).to_be_visible()
    dialog(page).get_by_label("Package name").fill("Welcome gift")
    dialog(page).get_by_label("Hours").fill("0")
    expiry = timezone.localdate() + timedelta(days=60)
    dialog(page).get_by_label("Expires on").fill(expiry.isoformat())
    dialog(page).get_by_label("Reason").fill("Sorry for the cancelled class.")
    page.evaluate(RECORD_BUTTON_STATE_WHEN_SENT)
    dialog(page).get_by_role("button", name="Grant the hours").click()
    expect(dialog(page)).to_contain_text("Enter a duration longer than zero.")
    assert page.evaluate("window.__submitDisabledWhenSent") is True, "the button is disabled while its request runs"
    expect(dialog(page).get_by_role("button", name="Grant the hours")).to_be_enabled()  # usable again after the error
    assert not Lot.objects.exists(), "a refused grant gives nothing"

    dialog(page).get_by_label("Hours").fill("1 h 30 min")
    dialog(page).get_by_role("button", name="Grant the hours").click()
    expect(page.locator(".messages")).to_contain_text("1.5 h granted")
    expect(dialog(page)).not_to_be_visible()
    expect(page.locator(".lot-table")).to_contain_text("Welcome gift")
    expect(page.locator(".lot-table")).to_contain_text("Granted by your school")
    expect(page.locator(".big-figure")).to_have_text("1.5 h")

    lot = Lot.objects.get()
    assert (lot.source, lot.minutes_purchased, lot.price_cents) == ("grant", 90, 0)
    assert not Receipt.objects.exists()
    assert AuditEntry.objects.get().action == "hours.grant"

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.get_by_role("link", name="Grant hours")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "nothing overflows a phone"
    screenshot(page, "console-student-hours-390")


def test_finance_extends_a_plans_packages_in_bulk_after_a_preview(page, live_server, screenshot):
    plan = make_plan("Standard")
    selected = [
        credit(make_student(email), 600, days_valid=20, plan=plan) for email in ("a@example.com", "b@example.com")
    ]
    untouched = credit(make_student("later@example.com"), 600, days_valid=200, plan=plan)
    before = {lot.pk: lot.expires_at for lot in Lot.objects.all()}
    make_console_user(FINANCE, role="Finance")
    console_sign_in(page, live_server, FINANCE, path="/console/students/")

    page.get_by_role("link", name="Extend packages in bulk").click()
    page.get_by_label("Plan").select_option(label="Standard")
    page.get_by_label("Expiring from").fill((timezone.localdate() + timedelta(days=10)).isoformat())
    page.get_by_label("Expiring up to").fill((timezone.localdate() + timedelta(days=30)).isoformat())
    page.get_by_label("Days later").fill("30")
    page.get_by_label("Reason").fill("School closed in August.")
    page.get_by_role("button", name="Preview").click()

    preview = page.locator("#bulk-extend")
    expect(preview).to_contain_text("2 packages of 2 students, with 20 h unused, will expire 30 days later.")
    assert not AuditEntry.objects.exists(), "the preview changes nothing"
    screenshot(page, "console-bulk-extend-preview")
    page.get_by_role("button", name="Extend 2 packages").click()

    expect(page.locator(".messages")).to_contain_text("2 packages of 2 students extended (20 h unused).")
    for lot in selected:
        lot.refresh_from_db()
        assert lot.expires_at == before[lot.pk] + timedelta(days=30)
    untouched.refresh_from_db()
    assert untouched.expires_at == before[untouched.pk]


def test_support_voids_a_session_recorded_by_mistake(page, live_server, screenshot):
    account = make_student(STUDENT)
    credit(account, 600, bought_days_ago=1)
    session = use(account, 90, subject="Physics")
    make_console_user(SUPPORT, role="Support")
    console_sign_in(page, live_server, SUPPORT, path=f"/console/students/{account.pk}/")
    expect(page.locator(".big-figure")).to_have_text("8.5 h")

    page.locator("#usage-table").get_by_role("link", name="Void the session of").click()
    expect(dialog(page)).to_contain_text("Physics with Dr. Maria Keller")
    dialog(page).get_by_label("Reason").fill("Recorded for the wrong student.")
    dialog(page).get_by_role("button", name="Void the session").click()

    expect(page.locator(".messages")).to_contain_text("Session voided.")
    expect(page.locator(".big-figure")).to_have_text("10 h")
    sessions = page.locator("#usage-table")
    expect(sessions).to_contain_text("Voided")
    expect(sessions).to_contain_text("Recorded for the wrong student.")
    expect(sessions.get_by_role("link", name="Void the session of")).to_have_count(0)
    session.refresh_from_db()
    assert session.voided_at is not None
    assert LedgerEntry.objects.filter(usage=session, kind="void").get().minutes == 90
    assert Usage.objects.count() == 1, "the session stays in the history"

    page.set_viewport_size(PHONE)
    screenshot(page, "console-student-voided-390")
