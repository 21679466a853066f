"""Pages that follow changes made elsewhere, in Chromium: a student's dashboard is open while staff
record a session in another browser and while Stripe reports a refund; the console's overview is open
while Stripe reports a dispute. Each page changes on its own, without a reload, within 10 s; a tab
that is hidden stops asking and asks again the moment it is shown."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from billing import samples
from billing.ledger import account_open
from billing.models import Payment
from billing.tests.builders import PASSWORD, credit, make_console_user, make_paid_payment, make_student, verified_user
from e2e.test_console import console_sign_in, dialog
from e2e.test_staff_alerts import stripe_sends

STUDENT = "learner@example.com"
FINANCE = "fiona.finance@example.com"
WITHIN = 10_000  # ms: the promise, with the 5 s poll inside it

# Count the polls the page sends, and make it look hidden or shown as a switched tab does.
COUNT_POLLS = """
window.__polls = 0;
document.body.addEventListener("htmx:beforeSend", (event) => {
  if (event.detail.elt.matches("[data-live]")) window.__polls += 1;
});
"""
TAB_HIDDEN = """(hidden) => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => hidden ? "hidden" : "visible"});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def signed_in_student(page, live_server):
    """A student who signs in with their password and lands on the dashboard. Returns their account."""
    account = account_open(user=verified_user(STUDENT))
    page.goto(f"{live_server.url}/")
    page.get_by_label("Email").fill(STUDENT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(f"{live_server.url}/")
    page.wait_for_load_state()
    return account


def test_a_session_staff_record_elsewhere_shows_on_the_open_dashboard(page, new_context, live_server):
    account = signed_in_student(page, live_server)
    credit(account, 600, bought_days_ago=1)
    make_console_user(FINANCE, role="Finance")
    page.reload()
    balance = page.get_by_test_id("balance")
    expect(balance).to_have_text("10 h")

    staff = new_context().new_page()
    console_sign_in(staff, live_server, FINANCE, path=f"/console/students/{account.pk}/")
    staff.get_by_role("link", name="Record a session").click()
    form = dialog(staff)
    form.get_by_label("When").fill((timezone.localtime() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    form.get_by_label("Duration").fill("1:30")
    form.get_by_label("Tutor").fill("Dr. Maria Keller")
    form.get_by_label("Subject").fill("Organic chemistry")
    form.get_by_role("button", name="Record the session").click()
    expect(staff.locator(".big-figure")).to_have_text("8.5 h")

    expect(balance).to_have_text("8.5 h", timeout=WITHIN)
    expect(page.locator("#usage-table")).to_contain_text("Organic chemistry", timeout=WITHIN)


def test_a_refund_stripe_reports_shows_on_the_open_dashboard(page, live_server, localstripe):
    account = signed_in_student(page, live_server)
    payment = make_paid_payment(localstripe, account=account)  # Standard: 10 h for €150.00
    page.reload()
    expect(page.get_by_test_id("balance")).to_have_text("10 h")

    payment = Payment.objects.get(pk=payment.pk)
    refunded = samples.charge_refunded(payment, [samples.refund(payment)])
    stripe_sends(live_server, samples.event("charge.refunded", refunded))

    expect(page.get_by_test_id("balance")).to_have_text("0 h", timeout=WITHIN)
    expect(page.locator("#purchase-table")).to_contain_text("Refunded", timeout=WITHIN)


def test_the_console_overview_counts_a_new_dispute_by_itself(page, live_server, localstripe):
    payment = make_paid_payment(localstripe, account=make_student(STUDENT))
    make_console_user(FINANCE, role="Finance")
    console_sign_in(page, live_server, FINANCE)
    disputes = page.locator(".figure", has_text="Open disputes")
    expect(disputes.locator("strong")).to_have_text("0")

    stripe_sends(live_server, samples.event("charge.dispute.created", samples.dispute(payment)))

    expect(disputes.locator("strong")).to_have_text("1", timeout=WITHIN)


def test_a_hidden_tab_stops_asking_and_asks_again_when_shown(page, live_server, settings):
    settings.LIVE_POLL_SECONDS = 1
    signed_in_student(page, live_server)
    page.evaluate(COUNT_POLLS)
    page.wait_for_function("() => window.__polls >= 2", timeout=5_000)  # visible: once a second

    page.evaluate(TAB_HIDDEN, True)
    page.wait_for_timeout(200)
    hidden_since = page.evaluate("() => window.__polls")
    page.wait_for_timeout(3_000)
    assert page.evaluate("() => window.__polls") == hidden_since, "a hidden tab sends no poll"

    page.evaluate(TAB_HIDDEN, False)
    page.wait_for_function(
        "(since) => window.__polls > since", arg=hidden_since, timeout=500
    )  # at once, not a second later
