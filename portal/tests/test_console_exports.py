"""The console's accounting exports page (/console/exports/): Finance picks a month or a range of days,
reads its summary and downloads each export as a CSV streamed row by row, each download audited.
Support gets the forbidden page, students no such page; a period that cannot be one is a clear
message, an unknown export 404."""

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext
from openpyxl import load_workbook

from billing import samples
from billing.accounting import PERIOD_BACKWARDS, PERIOD_TOO_LONG, ExportKind
from billing.disputes.holds import dispute_record
from billing.models import AuditEntry
from billing.refunds import refund_issue
from billing.tests.builders import make_paid_payment, make_plan, make_staff, make_student, use
from portal.console.forms import PERIOD_BOTH_WAYS, PERIOD_ONE_DAY

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")
PAGE = reverse("console:exports")
MARCH = {"start": "2026-03-01", "end": "2026-03-31"}


def export_url(kind):
    return reverse("console:export_csv", args=[kind])


@pytest.fixture(autouse=True)
def april(settings):
    """10 April 2026 in Berlin, the school's time zone: "last month" is March."""
    settings.TIME_ZONE = "Europe/Berlin"
    with time_machine.travel(datetime(2026, 4, 10, 12, 0, tzinfo=BERLIN)):
        yield


@pytest.fixture
def march_sale(localstripe):
    """A 10 h package sold for 150.00 on 5 March, by a real charge on the stand-in Stripe."""
    with time_machine.travel(datetime(2026, 3, 5, 10, 0, tzinfo=BERLIN)):
        return make_paid_payment(localstripe, account=make_student("buyer@example.com"))


def text(response):
    return response.content.decode()


def rows_of(response):
    assert response.streaming
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_page_shows_last_months_summary_with_a_download_of_each_export(finance_client, march_sale):
    response = finance_client.get(PAGE)

    assert response.status_code == 200
    page = text(response)
    assert "Summary: March 2026" in page
    assert '<th scope="row">Gross sales</th><td class="num" data-label="March 2026">€150.00</td>' in page
    assert "Deferred revenue at the end" in page
    for kind in ExportKind:
        assert f'href="{export_url(kind)}?start=2026-03-01&amp;end=2026-03-31"' in page
    assert 'aria-current="page">Exports</a>' in page
    assert not AuditEntry.objects.exists(), "reading the summary is not a download"


def test_a_month_picked_shows_that_month(finance_client, march_sale):
    page = text(finance_client.get(PAGE, {"month": "2026-04"}))

    assert "Summary: April 2026" in page
    assert 'value="2026-04"' in page and 'value="2026-04-01"' in page and 'value="2026-04-30"' in page
    assert '<th scope="row">Gross sales</th><td class="num" data-label="April 2026">€0.00</td>' in page


def test_a_range_of_days_shows_a_column_per_month_and_the_total(finance_client, march_sale):
    page = text(finance_client.get(PAGE, {"start": "2026-02-15", "end": "2026-03-31"}))

    assert "Summary: 15 Feb 2026 – 31 Mar 2026" in page
    assert '<th scope="col" class="num">15 Feb 2026 – 28 Feb 2026</th>' in page
    assert '<th scope="col" class="num">March 2026</th><th scope="col" class="num">Total</th>' in page
    assert 'data-label="Total">€150.00</td>' in page


def test_a_download_is_a_streamed_csv_named_after_the_export_and_the_period(finance_client, march_sale):
    response = finance_client.get(export_url("payments"), MARCH)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="payments-2026-03.csv"'
    (row,) = rows_of(response)
    assert (row["payment_id"], row["amount"], row["currency"], row["email"]) == (
        str(march_sale.pk),
        "150.00",
        "EUR",
        "buyer@example.com",
    )
    assert (row["created_at"], row["receipt"]) == ("2026-03-05T10:00:00+01:00", march_sale.receipt.number)


def test_moments_are_in_the_school_time_zone_whatever_the_readers(finance_client, finance_user, march_sale):
    finance_user.time_zone = "Europe/Lisbon"
    finance_user.save()

    (row,) = rows_of(finance_client.get(export_url("payments"), MARCH))

    assert row["created_at"] == "2026-03-05T10:00:00+01:00"


def test_a_range_names_its_file_by_its_days(finance_client):
    response = finance_client.get(export_url("credit_notes"), {"start": "2026-03-03", "end": "2026-04-02"})

    assert response["Content-Disposition"] == 'attachment; filename="credit-notes-2026-03-03-to-2026-04-02.csv"'
    assert rows_of(response) == []


def test_the_workbook_has_a_sheet_per_export_summary_first_with_numbers_as_numbers(finance_client, march_sale):
    response = finance_client.get(reverse("console:export_workbook"), MARCH)

    assert response["Content-Disposition"] == 'attachment; filename="accounting-2026-03.xlsx"'
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    assert workbook.sheetnames == [
        "Monthly summary",
        "Payments",
        "Refunds",
        "Receipts",
        "Credit notes",
        "Disputes",
        "Ledger movements",
        "Deferred revenue",
    ]
    header, sale = workbook["Payments"].iter_rows(values_only=True)
    sale = dict(zip(header, sale, strict=True))
    assert (sale["payment_id"], sale["amount"], sale["minutes"], sale["currency"]) == (march_sale.pk, 150, 600, "EUR")
    assert AuditEntry.objects.get().after == {"export": "workbook", "from": "2026-03-01", "to": "2026-03-31"}


def test_a_text_a_spreadsheet_would_run_is_kept_as_text(finance_client, localstripe):
    with time_machine.travel(datetime(2026, 3, 5, 10, 0, tzinfo=BERLIN)):
        make_paid_payment(localstripe, account=make_student("=1+2@example.com"))

    (row,) = rows_of(finance_client.get(export_url("payments"), MARCH))
    workbook = finance_client.get(reverse("console:export_workbook"), MARCH)
    sheet = load_workbook(io.BytesIO(b"".join(workbook.streaming_content)))["Payments"]

    assert row["email"] == "'=1+2@example.com"
    assert (sheet["E2"].value, sheet["E2"].data_type) == ("=1+2@example.com", "s")


def test_every_download_writes_one_audit_entry(finance_client, finance_user):
    rows_of(finance_client.get(export_url("ledger"), MARCH))

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_type, entry.target_label) == (
        finance_user,
        "accounting.export",
        "accounting_period",
        "2026-03",
    )
    assert entry.after == {"export": "ledger", "from": "2026-03-01", "to": "2026-03-31"}
    assert entry.ip_address == "127.0.0.1"


@pytest.mark.parametrize("url", [PAGE, export_url("payments"), export_url("summary")])
def test_support_gets_the_forbidden_page_and_nothing_is_exported(support_client, url):
    response = support_client.get(url, MARCH)

    assert response.status_code == 403
    assert "Only the Finance team can do this" in text(response)
    assert not AuditEntry.objects.exists()


def test_finance_has_the_exports_in_the_console_menu(finance_client):
    assert f'href="{PAGE}"' in text(finance_client.get(reverse("console:index")))


def test_support_has_no_exports_in_the_console_menu(support_client):
    page = text(support_client.get(reverse("console:index")))

    assert f'href="{reverse("console:audit")}"' in page and f'href="{PAGE}"' not in page


@pytest.mark.parametrize("url", [PAGE, export_url("payments")])
def test_the_exports_do_not_exist_for_students(student_client, url):
    assert student_client.get(url).status_code == 404


def test_an_unknown_export_is_not_found(finance_client):
    assert finance_client.get(export_url("salaries"), MARCH).status_code == 404
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("url", [PAGE, export_url("payments")])
def test_a_period_longer_than_two_years_is_refused_with_a_message(finance_client, url):
    response = finance_client.get(url, {"start": "2024-01-01", "end": "2026-01-01"})

    assert response.status_code == 400
    assert escape(PERIOD_TOO_LONG % {"years": 2}) in text(response)
    assert "Summary:" not in text(response)
    assert not AuditEntry.objects.exists()


def test_a_period_refused_is_said_in_the_readers_language(finance_client, finance_user):
    finance_user.language = "pt-pt"
    finance_user.save()

    response = finance_client.get(PAGE, {"start": "2024-01-01", "end": "2026-01-01"})

    with translation.override("pt-pt"):
        portuguese = gettext(PERIOD_TOO_LONG) % {"years": 2}
    assert portuguese != PERIOD_TOO_LONG % {"years": 2}
    assert escape(portuguese) in text(response)


def test_two_whole_years_are_one_period(finance_client):
    response = finance_client.get(PAGE, {"start": "2024-01-01", "end": "2025-12-31"})

    assert response.status_code == 200
    assert text(response).count('<th scope="col" class="num">') == 25  # 24 months and the total


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "2026-03-31", "end": "2026-03-01"}, PERIOD_BACKWARDS),
        ({"start": "2026-03-01"}, PERIOD_ONE_DAY),
        ({"month": "2026-03", "start": "2026-03-01", "end": "2026-03-31"}, PERIOD_BOTH_WAYS),
        ({"month": "9999-12"}, "Choose dates between 1 Jan 2000 and 31 Dec 2199."),
        ({"month": "2026-13"}, "Enter a valid date."),
        ({"start": "yesterday", "end": "2026-03-31"}, "Enter a valid date."),
    ],
)
def test_a_period_that_cannot_be_one_is_a_clear_message(finance_client, query, message):
    for url in (PAGE, export_url("summary")):
        response = finance_client.get(url, query)

        assert response.status_code == 400, url
        assert escape(str(message)) in text(response), url
    assert not AuditEntry.objects.exists()


def history(localstripe, account, plan, staff, sales):
    """`sales` sales this month, by real charges, each with a session, a partial refund (and its
    credit note) and a lost dispute on part of it: a row more in every export but the summary."""
    for _sale in range(sales):
        paid = make_paid_payment(localstripe, account=account, plan=plan)
        use(account, 30)
        refund_issue(payment=paid, amount_cents=1000, minutes=60, reason="Partly unhappy", actor=staff)
        lost = samples.dispute(paid, status="lost", withdrawn=True, amount_cents=5000)
        dispute_record(payment=paid, dispute_object=lost, event_type="charge.dispute.closed")


def queries_of(client, url, query):
    """The queries of one download, read to its end, and its rows."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, query)
        rows = rows_of(response) if response["Content-Type"].startswith("text/csv") else b"".join(response)
    return len(queries), rows


def test_no_export_reads_more_queries_for_50_rows_than_for_5(
    finance_client, localstripe, django_assert_max_num_queries
):
    account, plan, staff = make_student("many@example.com"), make_plan(), make_staff("refunds@example.com")
    april = {"month": "2026-04"}
    history(localstripe, account, plan, staff, sales=5)
    urls = [PAGE, reverse("console:export_workbook"), *(export_url(kind) for kind in ExportKind)]
    budgets = {url: queries_of(finance_client, url, april)[0] for url in urls}

    history(localstripe, account, plan, staff, sales=45)

    for url in urls:
        with django_assert_max_num_queries(budgets[url]):
            _count, rows = queries_of(finance_client, url, april)
        if url.endswith(".csv") and url != export_url("summary"):
            assert len(rows) >= 45, url  # the sessions empty a few packages: fewer rows of deferred revenue
