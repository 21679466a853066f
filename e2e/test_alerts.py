"""The alert bell in a real browser: a session recorded by staff shows up without reloading."""

import io

from django.core.management import call_command
from playwright.sync_api import expect

NEAR_ZERO = "ben.student@example.com"  # 1.75 h left, under the 2 h reminder level


def test_the_bell_counts_up_after_a_session_is_recorded(page, demo_data, sign_in, settings):
    settings.ALERTS_BELL_POLL_SECONDS = 1
    sign_in(page, NEAR_ZERO)
    bell = page.locator("#alert-bell")
    expect(bell).to_have_text("Alerts")  # nothing yet: the seed runs no scan

    call_command("record_session", NEAR_ZERO, "45", stdout=io.StringIO())

    expect(page.get_by_test_id("unread-count")).to_have_text("1", timeout=10_000)
    bell.click()
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    expect(page.get_by_text("Only 1 h left", exact=True)).to_be_visible()
    page.get_by_role("button", name="Mark all as read").click()
    expect(page.get_by_test_id("unread-count")).to_have_count(0, timeout=10_000)
