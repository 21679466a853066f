"""Subscriptions in Chromium: subscribe from the dashboard (a saved card, or one that needs 3-D
Secure), then cancel at period end, resume and change plan on the subscription page, against a real
localstripe (with a plan change, which it cannot do, answered at the HTTP boundary)."""

import re

from playwright.sync_api import expect

from billing.models import Plan, Subscription
from billing.tests.builders import add_card, subscribe
from e2e.navigation import follow_link
from portal.models import User
from portal.tests.subscription_stubs import plan_change_proxy

NEW_STUDENT = "cleo.student@example.com"  # no hours, no card


def balance(page):
    return page.get_by_test_id("balance")


def status(page):
    return page.locator("#subscription").get_by_test_id("subscription-status")


def subscribed_in_the_background(localstripe, plan_name="Monthly 8 h"):
    """Cleo subscribed already (as the dashboard's button does), so a test can start on the page."""
    account = User.objects.get(email=NEW_STUDENT).account
    subscription = subscribe(account, Plan.objects.get(name=plan_name), localstripe)
    assert subscription.status == "active"
    return subscription


def test_a_student_subscribes_with_a_saved_card_and_sees_the_hours(
    page, demo_data, sign_in, add_card_in_browser, screenshot, live_server
):
    sign_in(page, NEW_STUDENT)
    add_card_in_browser(page, "4242424242424242")
    follow_link(page, "My hours")
    plans = page.locator("#subscription-plans")
    expect(plans.get_by_role("heading", name="Monthly plans")).to_be_visible()

    plans.get_by_role("button", name="Subscribe: 8 h for €99.00 a month with Visa 4242").click()

    result = page.locator("#payment-result")
    expect(result).to_contain_text("Payment received. 8 h added (Monthly 8 h, €99.00).")
    expect(result).to_contain_text("Your Monthly 8 h subscription is active: it renews on")
    expect(balance(page)).to_have_text("8 h")
    expect(plans.get_by_role("heading", name="Your subscription")).to_be_visible()
    expect(plans.get_by_test_id("subscription-status")).to_have_text("Active")
    expect(plans.get_by_role("button", name=re.compile(r"^Subscribe"))).to_have_count(0)

    follow_link(page, "Subscription")
    expect(page.get_by_role("heading", name="Monthly 8 h", level=1)).to_be_visible()
    expect(status(page)).to_have_text("Active")
    expect(page.get_by_test_id("next-renewal")).to_contain_text("€99.00")
    expect(page.locator("#subscription")).to_contain_text("Visa 4242")
    expect(page.get_by_role("link", name=re.compile(r"^Receipt "))).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "subscription-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "subscription-phone")
    assert Subscription.objects.get(account__user__email=NEW_STUDENT).status == "active"


def test_a_3d_secure_card_is_authenticated_and_the_subscription_starts(page, demo_data, sign_in, add_card_in_browser):
    sign_in(page, NEW_STUDENT)
    add_card_in_browser(page, "4000002500003155", authenticate=True)
    follow_link(page, "My hours")

    page.get_by_role("button", name="Subscribe: 8 h for €99.00 a month with Visa 3155").click()
    page.get_by_role("button", name="Complete authentication").click()

    expect(page.locator("#payment-result")).to_contain_text("Payment received. 8 h added (Monthly 8 h, €99.00).")
    expect(balance(page)).to_have_text("8 h")
    expect(page.locator("#subscription-plans").get_by_test_id("subscription-status")).to_have_text("Active")
    assert Subscription.objects.get(account__user__email=NEW_STUDENT).status == "active"


def test_cancel_at_period_end_then_resume(page, demo_data, sign_in, localstripe, live_server, screenshot):
    subscription = subscribed_in_the_background(localstripe)
    sign_in(page, NEW_STUDENT)
    page.goto(f"{live_server.url}/subscription/")
    page.evaluate("window.notReloaded = true")

    page.get_by_role("link", name="Cancel at period end…").click()
    confirmation = page.get_by_role("group", name="Cancel at the end of this period?")
    expect(confirmation).to_contain_text("The hours you already have stay until they expire.")
    expect(confirmation).to_contain_text("No more hours are added after")
    screenshot(page, "subscription-cancel-confirmation")
    confirmation.get_by_role("button", name="Yes, cancel at period end").click()

    expect(status(page)).to_have_text("Cancels at period end")
    expect(page.locator("#subscription")).to_contain_text("Your subscription ends on")
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end

    page.get_by_role("button", name="Resume my subscription").click()

    expect(status(page)).to_have_text("Active")
    expect(page.locator("#subscription")).to_contain_text("Your subscription continues: it renews on")
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end
    assert page.evaluate("window.notReloaded") is True  # every step swapped the fragment in place


def test_cancel_and_resume_without_javascript(new_context, demo_data, sign_in, localstripe, live_server):
    subscribed_in_the_background(localstripe)
    context = new_context(java_script_enabled=False)
    page = sign_in(context.new_page(), NEW_STUDENT)
    page.goto(f"{live_server.url}/subscription/")

    page.get_by_role("link", name="Cancel at period end…").click()
    page.get_by_role("button", name="Yes, cancel at period end").click()

    expect(page.locator(".messages")).to_contain_text("Your subscription ends on")
    expect(status(page)).to_have_text("Cancels at period end")
    page.get_by_role("button", name="Resume my subscription").click()
    expect(page.locator(".messages")).to_contain_text("Your subscription continues")
    expect(status(page)).to_have_text("Active")
    context.close()


def test_an_upgrade_charges_the_difference_and_adds_the_extra_hours(
    page, demo_data, sign_in, localstripe, live_server, settings
):
    subscription = subscribed_in_the_background(localstripe)
    proxy = plan_change_proxy(localstripe, subscription, Plan.objects.get(name="Monthly 12 h"))
    settings.STRIPE_API_BASE = proxy.url
    try:
        sign_in(page, NEW_STUDENT)
        expect(balance(page)).to_have_text("8 h")
        follow_link(page, "Subscription")

        page.get_by_role("button", name="Upgrade to Monthly 12 h now").click()

        result = page.locator("#payment-result")
        expect(result).to_contain_text("Payment received.")
        expect(result).to_contain_text("(Monthly 12 h, €40.00).")
        expect(page.get_by_role("heading", name="Monthly 12 h", level=1)).to_be_visible()
        expect(page.locator("#subscription")).to_contain_text("(upgrade)")
        follow_link(page, "My hours")
        expect(balance(page)).to_have_text("12 h")
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url
    subscription.refresh_from_db()
    assert subscription.plan.name == "Monthly 12 h"


def test_a_student_without_a_card_is_invited_to_add_one(page, demo_data, sign_in, live_server):
    sign_in(page, NEW_STUDENT)
    page.goto(f"{live_server.url}/subscription/")

    expect(page.get_by_text("You have no subscription.")).to_be_visible()
    page.get_by_role("link", name="Add a card to subscribe").first.click()
    expect(page.locator("#add-card")).to_be_in_viewport()


def test_a_second_card_added_by_the_test_thread_is_offered(page, demo_data, sign_in, localstripe, live_server):
    subscription = subscribed_in_the_background(localstripe)
    other = add_card(subscription.account, localstripe, "5555555555554444")
    sign_in(page, NEW_STUDENT)
    page.goto(f"{live_server.url}/subscription/")

    page.get_by_role("radio", name=re.compile(rf"^{other.label}")).check()
    page.get_by_role("button", name="Use this card").click()

    expect(page.locator("#subscription")).to_contain_text(f"{other.label} now pays for your subscription.")
    other.refresh_from_db()
    assert other.is_default
