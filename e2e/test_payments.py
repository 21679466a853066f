"""Cards and one-click payments in Chromium, through the stand-in's Stripe.js and a real localstripe."""

import re

from playwright.sync_api import expect
from pypdf import PdfReader

from billing.models import Payment
from e2e.navigation import follow_link
from portal.models import User

NEAR_ZERO = "ben.student@example.com"  # 1.75 h left in a Starter (5 h, €80.00) package


def balance(page):
    return page.get_by_test_id("balance")


def test_a_student_adds_a_card_and_renews_in_one_click(page, demo_data, sign_in, add_card_in_browser, screenshot):
    sign_in(page, NEAR_ZERO)
    add_card_in_browser(page, "4242424242424242")
    expect(page.locator("#card-list")).to_contain_text("Visa 4242")
    expect(page.locator("#card-list")).to_contain_text("Default")

    follow_link(page, "My hours")
    expect(balance(page)).to_have_text("1.75 h")
    page.get_by_role("button", name="Renew 5 h for €80.00 with Visa 4242").click()

    expect(page.locator("#payment-result")).to_contain_text("Payment received. 5 h added (Starter, €80.00).")
    expect(balance(page)).to_have_text("6.75 h")
    expect(page.locator("#lots .lot-card")).to_have_count(2)
    # The seeded package, its renewal, and the declined attempt the demo seeds.
    expect(page.locator("#purchase-table tbody tr")).to_have_count(3)
    screenshot(page, "renewed")
    assert Payment.objects.filter(account__user__email=NEAR_ZERO).latest("created_at").status == "succeeded"


def test_a_3d_secure_card_is_authenticated_on_the_page(page, demo_data, sign_in, add_card_in_browser):
    sign_in(page, NEAR_ZERO)
    add_card_in_browser(page, "4000002760003184", authenticate=True)
    expect(page.locator("#card-list")).to_contain_text("Visa 3184")

    follow_link(page, "My hours")
    page.get_by_role("button", name=re.compile(r"^Top up 10 h for €150.00 with Visa 3184")).click()
    page.get_by_role("button", name="Complete authentication").click()

    expect(page.locator("#payment-result")).to_contain_text("Payment received. 10 h added")
    expect(balance(page)).to_have_text("11.75 h")


def test_a_failed_3d_secure_adds_no_hours(page, demo_data, sign_in, add_card_in_browser):
    sign_in(page, NEAR_ZERO)
    add_card_in_browser(page, "4000002760003184", authenticate=True)
    follow_link(page, "My hours")

    page.get_by_role("button", name=re.compile(r"^Renew 5 h")).click()
    page.get_by_role("button", name="Fail authentication").click()

    expect(page.locator("#payment-result")).to_contain_text("The card's authentication (3-D Secure) failed.")
    expect(page.locator("#payment-result")).to_contain_text("No hours were added.")
    expect(balance(page)).to_have_text("1.75 h")


def test_a_card_declined_on_charge_says_why_and_another_card_saves_the_day(
    page, demo_data, sign_in, add_card_in_browser
):
    sign_in(page, NEAR_ZERO)
    add_card_in_browser(page, "4000000000000341")
    add_card_in_browser(page, "4242424242424242")
    follow_link(page, "My hours")

    page.get_by_role("button", name=re.compile(r"^Renew 5 h for €80.00 with Visa 0341")).click()

    result = page.locator("#payment-result")
    expect(result).to_contain_text("Payment failed. Your card was declined by your bank. No hours were added.")
    expect(result.get_by_role("link", name="Add a new card")).to_be_visible()
    expect(result).to_be_focused()
    expect(balance(page)).to_have_text("1.75 h")

    result.get_by_role("button", name="Renew 5 h for €80.00 with Visa 4242").click()

    expect(result).to_contain_text("Payment received. 5 h added")
    expect(balance(page)).to_have_text("6.75 h")


def test_a_card_declined_at_setup_is_explained_in_the_form(page, demo_data, sign_in, add_card_in_browser):
    sign_in(page, NEAR_ZERO)

    add_card_in_browser(page, "4000000000000002", saved=False)

    expect(page.get_by_role("alert")).to_contain_text("Your card was declined.")
    expect(page.locator("#card-list")).to_contain_text("You have no saved card yet.")


def test_removing_the_default_card_promotes_the_other(page, demo_data, sign_in, add_card_in_browser):
    sign_in(page, NEAR_ZERO)
    add_card_in_browser(page, "4242424242424242")
    expect(page.locator("#card-list")).to_contain_text("Visa 4242")
    add_card_in_browser(page, "4000002760003184", authenticate=True)
    expect(page.locator("#card-list")).to_contain_text("Visa 3184")
    page.once("dialog", lambda dialog: dialog.accept())

    page.get_by_role("button", name="Remove Visa 4242").click()

    expect(page.locator("#card-list")).to_contain_text("Visa 4242 was removed. Visa 3184 is now your default card.")
    expect(page.get_by_role("button", name="Remove Visa 4242")).to_have_count(0)
    user = User.objects.get(email=NEAR_ZERO)
    assert [card.label for card in user.account.payment_methods.active()] == ["Visa 3184"]


def test_a_receipt_is_downloaded_after_a_renewal(page, demo_data, sign_in, add_card_in_browser):
    sign_in(page, NEAR_ZERO)
    add_card_in_browser(page, "4242424242424242")
    follow_link(page, "My hours")
    page.get_by_role("button", name="Renew 5 h for €80.00 with Visa 4242").click()
    expect(page.locator("#payment-result")).to_contain_text("Payment received.")
    purchases = page.locator("#purchase-table")
    with page.expect_download() as from_the_purchases:
        # Newest first: the renewal's receipt, above the demo's earlier purchases' ones.
        purchases.get_by_role("link", name=re.compile(r"^Receipt ")).first.click()
    assert from_the_purchases.value.suggested_filename.startswith("receipt-")

    follow_link(page, "Receipts")
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile(r"^Download receipt-")).first.click()

    download = download_info.value
    receipt = Payment.objects.filter(account__user__email=NEAR_ZERO).latest("created_at").receipt
    assert download.suggested_filename == f"receipt-{receipt.number}.pdf"
    text = PdfReader(download.path()).pages[0].extract_text()
    assert receipt.number in text and "€80.00" in text and "Starter: 5 h of tutoring" in text
