"""The student's account page in Chromium: details and reminder level saved in place, printed on the
next receipt; the page and allauth's email, password and two-factor pages fit a phone."""

import pytest
from playwright.sync_api import expect

from billing.models import Payment
from billing.tests.pdfs import pdf_text
from e2e.navigation import follow_link
from portal.models import User

NEAR_ZERO = "ben.student@example.com"  # 1.75 h left in a Starter (5 h, €80.00) package
NIF = "123456789"
# allauth's own pages the account page links to, by the link's text, with each page's heading.
SECURITY_PAGES = [
    ("Email addresses", "Email Addresses"),
    ("Change your password", "Change Password"),
    ("Two-factor authentication", "Two-Factor Authentication"),
]


def test_a_student_saves_their_details_and_the_next_receipt_prints_them(
    page, demo_data, sign_in, add_card_in_browser, screenshot
):
    sign_in(page, NEAR_ZERO)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()

    details = page.locator("#details")
    details.get_by_label("First name").fill("Benedita")
    details.get_by_label("Last name").fill("Araújo")
    details.get_by_label("Billing address").fill("Rua Augusta 1\n1100-048 Lisboa")
    details.get_by_label("Tax number (NIF)").fill("123456780")
    details.get_by_role("button", name="Save details").click()
    expect(details.get_by_role("alert")).to_contain_text("This is not a valid tax number.")
    details.get_by_label("Tax number (NIF)").fill(f"PT {NIF}")
    details.get_by_role("button", name="Save details").click()
    expect(details.get_by_role("status")).to_contain_text("Your details are saved.")
    expect(details.get_by_label("Tax number (NIF)")).to_have_value(NIF)

    reminder = page.locator("#reminder")
    reminder.get_by_label("Hours").fill("3")
    reminder.get_by_label("Minutes").fill("30")
    reminder.get_by_role("button", name="Save reminder").click()
    expect(reminder.get_by_role("status")).to_have_text("We remind you when your balance falls below 3.5 h.")
    screenshot(page, "account-saved")

    page.reload()  # saved, not just shown
    expect(page.locator("#details").get_by_label("Last name")).to_have_value("Araújo")
    expect(page.locator("#reminder").get_by_label("Minutes")).to_have_value("30")
    account = User.objects.get(email=NEAR_ZERO).account
    assert (account.tax_id, account.low_balance_threshold_minutes) == (NIF, 210)

    add_card_in_browser(page, "4242424242424242")
    follow_link(page, "My hours")
    expect(page.get_by_text("below your reminder level of 3.5 h")).to_be_visible()
    page.get_by_role("button", name="Renew 5 h for €80.00 with Visa 4242").click()
    expect(page.locator("#payment-result")).to_contain_text("Payment received.")
    receipt = Payment.objects.filter(account__user__email=NEAR_ZERO).latest("created_at").receipt
    follow_link(page, "Receipts")
    with page.expect_download() as download_info:
        page.get_by_role("link", name=f"Download receipt-{receipt.number}.pdf").click()

    with open(download_info.value.path(), "rb") as pdf:
        text = pdf_text(pdf.read())
    assert "Benedita Araújo" in text and f"NIF {NIF}" in text and "1100-048 Lisboa" in text


@pytest.mark.parametrize(("width", "height", "name"), [(390, 844, "phone"), (1280, 900, "desktop")])
def test_the_account_page_and_allauths_pages_fit_the_screen(
    new_context, demo_data, sign_in, screenshot, width, height, name
):
    context = new_context(viewport={"width": width, "height": height}, is_mobile=width < 500)
    page = sign_in(context.new_page(), NEAR_ZERO)
    account_url = page.url + "account/"

    page.goto(account_url)
    expect(page.get_by_role("heading", name="Recent sign-ins")).to_be_visible()
    expect(page.locator("#sign-ins li").first).to_contain_text("from 127.0.0.1")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"account-{name}")

    for link, heading in SECURITY_PAGES:
        page.goto(account_url)
        page.get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="← Back to your account")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width, link
        screenshot(page, f"account-{link.lower().replace(' ', '-')}-{name}")
    context.close()
