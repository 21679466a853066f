"""Automatic top-up in Chromium: a student below their level turns it on from the dashboard's
low-balance banner; saving buys their package at once, says the most it can charge in a month,
and the single top-up the cap allows pauses it until the month turns."""

import pytest
from playwright.sync_api import expect

from billing.models import Payment
from portal.models import User

NEAR_ZERO = "ben.student@example.com"  # 1.75 h left in a Starter (5 h, €80.00) package


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_a_student_turns_it_on_from_the_banner_and_the_cap_pauses_it(
    page, demo_data, sign_in, add_card_in_browser, screenshot, live_server, width, height
):
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, NEAR_ZERO)
    add_card_in_browser(page, "4242424242424242")
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Never run out: set up automatic top-up").click()
    section = page.locator("#auto-top-up")
    expect(section.get_by_role("heading", name="Automatic top-up")).to_be_visible()

    section.get_by_label("Buy").select_option(label="Starter: 5 h for €80.00")
    section.get_by_label("At most this many top-ups a month").fill("1")
    section.get_by_label("And at most this amount a month").fill("50")
    section.get_by_role("button", name="Turn on automatic top-up").click()
    expect(section.get_by_role("alert")).to_contain_text("more than the monthly amount")
    section.get_by_label("And at most this amount a month").fill("100")
    section.get_by_role("button", name="Turn on automatic top-up").click()
    expect(section.get_by_role("status")).to_contain_text(
        "At most 1 top-up a month: the most it can charge in a calendar month is €80.00."
    )

    # 1.75 h is below the 2 h level: saving bought the package at once, which reached the cap.
    account = User.objects.get(email=NEAR_ZERO).account
    bought = Payment.objects.get(account=account, kind=Payment.Kind.AUTO_TOP_UP)
    assert bought.status == Payment.Status.SUCCEEDED
    page.reload()
    section = page.locator("#auto-top-up")
    expect(section).to_contain_text("This month's limit is reached")
    expect(section).to_contain_text("It resumes by itself on")
    screenshot(page, f"auto-top-up-{width}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # fits the screen
    page.goto(f"{live_server.url}/alerts/")
    expect(page.get_by_text("Topped up 5 h automatically, €80.00", exact=True)).to_be_visible()
