"""Privacy requests in Chromium: a student downloads all their data from the account page (a ZIP with
data.json and their receipts' PDFs); Finance erases a student through the confirmation dialog, and
the student's Stripe customer is gone from the stand-in. Every page and dialog is checked by axe-core
(e2e/conftest.py)."""

import json
import zipfile

import requests
from playwright.sync_api import expect

from billing.models import Account
from billing.tests.builders import make_console_user, make_paid_payment, make_student
from billing.tests.localstripe import SECRET_KEY
from billing.tests.pdfs import pdf_text
from e2e.navigation import follow_link
from e2e.test_console import console_sign_in, dialog
from portal.models import User

RICH_STUDENT = "ana.student@example.com"  # the demo's student with receipts
FINANCE = "fiona.finance@example.com"
LEAVING = "leaving@example.com"


def test_a_student_downloads_all_their_data_from_the_account_page(page, demo_data, sign_in, screenshot):
    sign_in(page, RICH_STUDENT)
    follow_link(page, "Account")
    section = page.locator("#my-data")
    expect(section.get_by_role("heading", name="Your data")).to_be_visible()
    screenshot(page, "account-my-data")

    with page.expect_download() as download:
        section.get_by_role("link", name="Download my data").click()

    assert download.value.suggested_filename.startswith("my-data-")
    with zipfile.ZipFile(download.value.path()) as archive:
        data = json.loads(archive.read("data.json"))
        assert data["profile"]["email"] == RICH_STUDENT
        receipts = data["receipts"]
        assert receipts, "the demo's student has receipts"
        assert receipts[0]["number"] in pdf_text(archive.read(receipts[0]["file"]))


def test_finance_erases_a_student_through_the_confirmation(page, live_server, localstripe, screenshot):
    account = make_paid_payment(localstripe, account=make_student(LEAVING, first_name="Lea")).account
    customer_id = Account.objects.get(pk=account.pk).stripe_customer_id
    make_console_user(FINANCE, role="Finance")
    console_sign_in(page, live_server, FINANCE, path=f"/console/students/{account.pk}/")

    page.get_by_role("link", name="Erase at their request").click()
    expect(dialog(page)).to_be_visible()
    expect(dialog(page)).to_contain_text("Kept")
    dialog(page).get_by_label("The student's email address").fill("someone.else@example.com")
    dialog(page).get_by_label("Reason").fill("Asked by email today")
    dialog(page).get_by_role("button", name="Erase the student").click()
    expect(dialog(page)).to_contain_text("That is not this student's email address")
    assert User.objects.get(pk=account.user_id).erased_at is None
    # Photographed after the form's last swap: swapped after a full-page screenshot, it had htmx
    # set inline styles (seen in Chromium), which the Content Security Policy refuses.
    screenshot(page, "console-erase-confirmation")

    dialog(page).get_by_label("The student's email address").fill(LEAVING)
    dialog(page).get_by_role("button", name="Erase the student").click()

    expect(page.locator(".messages")).to_contain_text("The student is erased.")
    expect(page.get_by_text("Erased on")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"erased-{account.user_id}@erased.invalid")
    expect(page.get_by_role("link", name="Erase at their request")).to_have_count(0)
    screenshot(page, "console-erased-student")
    user = User.objects.get(pk=account.user_id)
    assert (user.erased_at is not None, user.email, user.first_name) == (True, f"erased-{user.pk}@erased.invalid", "")
    answer = requests.get(f"{localstripe.url}/v1/customers/{customer_id}", auth=(SECRET_KEY, ""), timeout=5)
    assert answer.status_code == 404
