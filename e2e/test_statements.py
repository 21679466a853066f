"""Statements of account in Chromium: a student downloads last month's from the dashboard and a
range of their own from the account page, as PDF and CSV; a range that ends before it starts is
refused with a clear message."""

import csv
import io

from django.utils import timezone
from playwright.sync_api import expect

from billing.tests.pdfs import pdf_text
from e2e.navigation import follow_link

NEAR_ZERO = "ben.student@example.com"


def test_a_student_downloads_statements_from_the_dashboard_and_the_account_page(
    page, demo_data, sign_in, screenshot, live_server
):
    sign_in(page, NEAR_ZERO)
    with page.expect_download() as dashboard_download:
        page.get_by_role("link", name="Last month's statement (PDF)").click()
    assert dashboard_download.value.suggested_filename.startswith("statement-")
    with open(dashboard_download.value.path(), "rb") as pdf:
        assert "Statement of account" in pdf_text(pdf.read())

    follow_link(page, "Account")
    section = page.locator("#statements")
    today = timezone.localdate()
    section.get_by_label("From").fill(f"{today.year - 2}-01-01")
    section.get_by_label("To").fill(today.isoformat())
    with page.expect_download() as pdf_download:
        section.get_by_role("button", name="Download PDF").click()
    with open(pdf_download.value.path(), "rb") as pdf:
        text = pdf_text(pdf.read())
    assert f"Opening balance on 1 Jan {today.year - 2}" in text and "Closing balance on" in text
    assert "Purchase" in text and "Session" in text

    with page.expect_download() as csv_download:
        section.get_by_role("button", name="Download CSV").click()
    with open(csv_download.value.path(), encoding="utf-8") as data:
        rows = list(csv.reader(io.StringIO(data.read())))
    assert len(rows) > 3

    section.get_by_label("From").fill(today.isoformat())
    section.get_by_label("To").fill(f"{today.year - 1}-01-01")
    section.get_by_role("button", name="Download PDF").click()
    expect(page.get_by_role("alert")).to_contain_text("end")
    screenshot(page, "statement-refused")
