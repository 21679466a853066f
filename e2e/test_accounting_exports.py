"""Accounting exports in Chromium: Finance opens them from the console's menu, picks the month of the
demo's latest sale, reads the month's summary and downloads its payments as CSV; the page passes axe."""

import csv
import re

from django.utils import timezone
from playwright.sync_api import expect

from billing.accounting import accounting_month, accounting_summary
from billing.formatting import iso_date, money_input, money_text, period_text
from billing.models import Payment
from e2e.navigation import follow_link

FINANCE = "staff@example.com"


def test_finance_picks_a_month_reads_its_summary_and_downloads_its_payments(
    page, demo_data, live_server, staff_sign_in, axe_violations, screenshot
):
    sale = Payment.objects.filter(status=Payment.Status.SUCCEEDED).latest("created_at")
    month = timezone.localtime(sale.created_at, timezone.get_default_timezone()).date().replace(day=1)
    (figures,) = accounting_summary(period=accounting_month(month)).months
    staff_sign_in(page, FINANCE)

    follow_link(page, "Exports")
    expect(page.get_by_role("link", name="Exports", exact=True)).to_have_attribute("aria-current", "page")
    page.get_by_label("Month").fill(iso_date(month)[:7])
    page.get_by_role("button", name="Show this month").click()

    expect(page.get_by_role("heading", name=f"Summary: {period_text(month, 'month')}")).to_be_visible()
    gross = page.get_by_role("row", name=re.compile("^Gross sales"))
    expect(gross).to_contain_text(money_text(figures.gross_sales_cents, "EUR"))
    expect(page.get_by_role("row", name=re.compile("^Hours outstanding at the end"))).to_be_visible()
    axe_violations.check(page)
    screenshot(page, "accounting-exports")

    with page.expect_download() as download:
        page.get_by_role("link", name="Payments (CSV)").click()

    assert download.value.suggested_filename == f"payments-{iso_date(month)[:7]}.csv"
    with open(download.value.path(), encoding="utf-8", newline="") as exported:
        rows = {row["payment_id"]: row for row in csv.DictReader(exported)}
    assert (rows[str(sale.pk)]["amount"], rows[str(sale.pk)]["currency"]) == (money_input(sale.amount_cents), "EUR")
    assert sum(int(row["amount"].replace(".", "")) for row in rows.values()) == figures.gross_sales_cents
