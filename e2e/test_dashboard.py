"""A student signs in and reads their hours in a real browser."""

import re

from playwright.sync_api import expect

from billing.formatting import hours_text
from billing.selectors import balance_summary
from portal.models import User

RICH_STUDENT = "ana.student@example.com"


def test_a_student_signs_in_and_sees_the_seeded_balance(page, demo_data, sign_in, screenshot):
    expected = balance_summary(account=User.objects.get(email=RICH_STUDENT).account)

    sign_in(page, RICH_STUDENT)

    expect(page.get_by_test_id("balance")).to_have_text(hours_text(expected.available_minutes))
    expect(page.get_by_text(f"{hours_text(expected.next_expiry.minutes)} expire on")).to_be_visible()
    expect(page.get_by_role("heading", name="Your packages")).to_be_visible()
    expect(page.get_by_text("Expires soon")).to_be_visible()
    screenshot(page, "dashboard-desktop")


def test_sorting_the_usage_table_swaps_only_the_table(page, demo_data, sign_in, live_server):
    sign_in(page, RICH_STUDENT)
    page.evaluate("window.notReloaded = true")
    usage = page.locator("#usage-table")
    durations = usage.locator("tbody td.num")

    usage.get_by_role("link", name="Duration").click()
    expect(page).to_have_url(re.compile(r"usage-sort=minutes"))
    expect(usage.get_by_role("columnheader", name="Duration")).to_have_attribute("aria-sort", "ascending")
    shortest_first = durations.all_inner_texts()

    usage.get_by_role("link", name="Duration").click()
    expect(usage.get_by_role("columnheader", name="Duration")).to_have_attribute("aria-sort", "descending")
    longest_first = durations.all_inner_texts()

    assert shortest_first[0] == "45 min"
    assert longest_first[0] == "1 h 30 min"
    assert page.evaluate("window.notReloaded") is True  # the page itself was never reloaded
    expect(usage.get_by_role("link", name="Duration")).to_be_focused()  # keyboard users stay in place


def test_the_tables_page_without_javascript(new_context, demo_data, sign_in, live_server):
    context = new_context(java_script_enabled=False)
    page = sign_in(context.new_page(), RICH_STUDENT)
    usage = page.locator("#usage-table")

    usage.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"usage-page=2"))
    expect(page.locator("#usage-table")).to_contain_text("Page 2 of")

    page.locator("#usage-table").get_by_role("link", name="Sort by Duration").click()
    expect(page).to_have_url(re.compile(r"usage-sort=minutes"))
    expect(page.locator("#usage-table tbody td.num").first).to_have_text("45 min")
    context.close()


def test_the_dashboard_fits_a_phone(new_context, demo_data, sign_in, screenshot):
    context = new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = sign_in(context.new_page(), "ben.student@example.com")

    balance = page.get_by_test_id("balance")
    expect(balance).to_be_in_viewport()
    expect(page.get_by_text("Low balance.")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "dashboard-phone")
    context.close()
