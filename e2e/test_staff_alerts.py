"""A staff alert arriving in Chromium: a Finance member has the console open when Stripe sends a new
dispute (a signed charge.dispute.created, delivered to the live site's webhook endpoint); the
console's bell counts it without a reload, and the inbox links to the dispute with its evidence due
date, on a phone's width too."""

import urllib.request

from django.conf import settings as django_settings
from django.urls import reverse
from playwright.sync_api import expect

from alerts.models import Notification
from billing import samples
from billing.formatting import datetime_text
from billing.models import Dispute
from billing.tests.builders import make_console_user, make_paid_payment, make_student
from e2e.test_console import console_sign_in

FINANCE = "fiona.finance@example.com"
PAYER = "payer@example.com"


def stripe_sends(live_server, stripe_event):
    """POST a signed event to the live site as Stripe does."""
    payload = samples.body(stripe_event)
    header = samples.signature_header(payload, django_settings.STRIPE_WEBHOOK_SECRET)
    request = urllib.request.Request(
        f"{live_server.url}{reverse('billing:stripe_webhook')}",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def test_finance_hears_of_a_new_dispute_in_the_console(page, live_server, localstripe, settings, screenshot):
    settings.ALERTS_BELL_POLL_SECONDS = 1
    payment = make_paid_payment(localstripe, account=make_student(PAYER))
    make_console_user(FINANCE, role="Finance")
    console_sign_in(page, live_server, FINANCE)
    bell = page.locator("#staff-bell")
    expect(bell).to_have_text("Alerts")  # nothing yet

    stripe_sends(live_server, samples.event("charge.dispute.created", samples.dispute(payment)))

    # No scan is run by the test: the site runs the staff scan once the event is applied.
    expect(page.get_by_test_id("staff-unread-count")).to_have_text("1", timeout=10_000)
    dispute = Dispute.objects.get()
    bell.click()
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    inbox = page.locator("#inbox")
    expect(inbox).to_contain_text(f"New dispute of €150.00 by {PAYER}")
    expect(inbox).to_contain_text(f"Evidence is due by {datetime_text(dispute.evidence_due_by)}.")

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the inbox fits a phone's width"
    screenshot(page, "console-staff-alert")

    inbox.get_by_role("link", name="Open the dispute").click()
    expect(page).to_have_url(f"{live_server.url}/console/disputes/{dispute.pk}/")
    page.go_back()
    page.get_by_role("button", name="Mark all as read").click()
    expect(page.get_by_test_id("staff-unread-count")).to_have_count(0, timeout=10_000)
    assert Notification.objects.get(kind=Notification.Kind.STAFF_DISPUTE_OPENED).read_at is not None
