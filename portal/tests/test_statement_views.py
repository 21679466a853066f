"""Statements for students (their own, from the account page and the dashboard) and for staff of
either level (any student's, from the console): PDF and CSV, last month by default, a clear 400 for
a range that cannot be one, and the monthly email choice."""

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext

from billing import ledger
from billing.statements import RANGE_BACKWARDS, RANGE_TOO_LONG
from billing.tests.builders import credit, make_student
from billing.tests.pdfs import pdf_text
from portal.student.statement_views import EMAILS_OFF, EMAILS_ON

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")
PDF = reverse("student:statement_pdf")
CSV = reverse("student:statement_csv")


@pytest.fixture(autouse=True)
def december():
    """Mid-December 2026: "last month" is November."""
    with time_machine.travel(datetime(2026, 12, 10, 12, 0, tzinfo=BERLIN), tick=False):
        yield


@pytest.fixture
def history(student):
    """Ana's November: a package bought in October, one session."""
    credit(student, 600, bought_days_ago=60, days_valid=120, name="Standard")
    ledger.usage_record(
        account=student,
        minutes=90,
        occurred_at=datetime(2026, 11, 12, 16, 0, tzinfo=BERLIN),
        tutor="Dr. Maria Keller",
        subject="Mathematics",
    )
    return student


@pytest.fixture
def other_student():
    other = make_student("other@example.com")
    credit(other, 1200, bought_days_ago=40, name="Intensive")
    ledger.usage_record(
        account=other,
        minutes=60,
        occurred_at=datetime(2026, 11, 20, 10, 0, tzinfo=BERLIN),
        tutor="Prof. Secret Tutor",
        subject="Secret Subject",
    )
    return other


def test_a_student_downloads_last_months_statement_as_pdf(student_client, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = student_client.get(PDF)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="statement-2026-11.pdf"'
    text = pdf_text(response.content)
    assert "Opening balance on 1 Nov 2026 10 h" in text
    assert "Session: Mathematics with Dr. Maria Keller" in text
    assert "Closing balance on 30 Nov 2026 8.5 h" in text


def test_a_student_downloads_any_range_as_csv(student_client, history):
    response = student_client.get(CSV, {"start": "2026-11-10", "end": "2026-12-09"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="statement-2026-11-10-to-2026-12-09.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["Date", "Type", "Description"]
    assert rows[1] == ["2026-11-10", "Opening balance", "", "", "", "600", "", "", "10.00"]
    assert rows[2][1:6] == ["Session", "Mathematics with Dr. Maria Keller", "0", "90", "510"]
    assert rows[3] == ["2026-12-09", "Closing balance", "", "", "", "510", "", "", "8.50"]


def test_the_statement_is_always_the_students_own(student_client, history, other_student):
    text = pdf_text(student_client.get(PDF).content)
    assert "Secret Subject" not in text and "Intensive" not in text
    # The console's address for the other student's statement does not exist for a student.
    url = reverse("console:statement_pdf", args=[other_student.pk])
    assert student_client.get(url).status_code == 404


def test_a_statement_download_asks_anonymous_visitors_to_sign_in(client):
    response = client.get(PDF)
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": "2026-11-30", "end": "2026-11-01"}, RANGE_BACKWARDS),
        ({"start": "2019-01-01", "end": "2026-11-30"}, RANGE_TOO_LONG % {"years": 5}),
        ({"start": "yesterday", "end": "2026-11-30"}, "Enter a valid date."),
        ({"start": "2026-11-01"}, "This field is required."),
        ({"start": "2026-02-30", "end": "2026-03-01"}, "Enter a valid date."),
        ({"start": "9" * 5000, "end": "\x00"}, "Enter a valid date."),
    ],
)
@pytest.mark.parametrize("url", [PDF, CSV])
def test_a_range_that_cannot_be_a_statement_is_a_clear_400(student_client, url, query, message):
    response = student_client.get(url, query)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    text = response.content.decode()
    assert message in text
    assert 'id="statements"' in text  # the form again, to correct it


def test_a_range_refused_is_said_in_the_students_language(student_client, student):
    student.user.language = "pt-pt"
    student.user.save()

    response = student_client.get(CSV, {"start": "2019-01-01", "end": "2026-11-30"})

    with translation.override("pt-pt"):
        portuguese = gettext(RANGE_TOO_LONG) % {"years": 5}
    assert portuguese != RANGE_TOO_LONG % {"years": 5}
    assert portuguese in response.content.decode()


def test_the_account_page_offers_last_month_and_the_email_choice(student_client, student):
    text = student_client.get(reverse("student:account")).content.decode()

    assert '<section id="statements" class="section" aria-labelledby="statements-title">' in text
    assert 'name="start" value="2026-11-01"' in text and 'name="end" value="2026-11-30"' in text
    assert f'formaction="{CSV}"' in text
    assert "Email me last month&#x27;s statement on the first of each month" in text


def test_the_dashboard_links_last_months_statement(student_client, student):
    text = student_client.get(reverse("student:dashboard")).content.decode()

    assert f'<a href="{PDF}" download hx-boost="false">' in text
    assert f'href="{reverse("student:account")}#statements"' in text


def test_the_email_choice_saves_in_place_under_htmx(student_client, student):
    response = student_client.post(
        reverse("student:statement_emails"), {"statement_emails": "on"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert text.lstrip().startswith('<form id="statement-emails"')
    assert escape(EMAILS_ON) in text and "checked" in text
    student.refresh_from_db()
    assert student.statement_emails is True


def test_the_email_choice_saves_without_javascript_too(student_client, student):
    student.statement_emails = True
    student.save()

    response = student_client.post(reverse("student:statement_emails"), {})

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('student:account')}#statements"
    student.refresh_from_db()
    assert student.statement_emails is False
    assert escape(EMAILS_OFF) in student_client.get(response["Location"]).content.decode()


def test_the_email_choice_takes_only_a_post(student_client):
    assert student_client.get(reverse("student:statement_emails")).status_code == 405


@pytest.mark.parametrize("staff_client", ["support_client", "finance_client"])
def test_staff_of_either_level_download_a_students_statement(request, staff_client, history, other_student):
    client = request.getfixturevalue(staff_client)

    pdf = client.get(reverse("console:statement_pdf", args=[history.pk]))
    spreadsheet = client.get(
        reverse("console:statement_csv", args=[history.pk]), {"start": "2026-11-01", "end": "2026-11-30"}
    )

    assert pdf.status_code == 200 and pdf["Content-Disposition"] == 'attachment; filename="statement-2026-11.pdf"'
    text = pdf_text(pdf.content)
    assert "ana@example.com" in text and "Mathematics with Dr. Maria Keller" in text and "Secret" not in text
    assert spreadsheet.status_code == 200
    assert b"Mathematics with Dr. Maria Keller" in b"".join(spreadsheet.streaming_content)


def test_the_console_offers_the_statement_on_the_students_page(support_client, student):
    text = support_client.get(reverse("console:student", args=[student.pk])).content.decode()

    assert f'action="{reverse("console:statement_pdf", args=[student.pk])}"' in text
    assert f'formaction="{reverse("console:statement_csv", args=[student.pk])}"' in text
    assert 'value="2026-11-01"' in text


def test_an_unknown_student_has_no_statement(support_client):
    assert support_client.get(reverse("console:statement_pdf", args=[987654])).status_code == 404
    assert support_client.get(reverse("console:statement_csv", args=[987654])).status_code == 404


def test_a_bad_range_in_the_console_is_a_clear_400(support_client, student):
    url = reverse("console:statement_pdf", args=[student.pk])

    response = support_client.get(url, {"start": "2026-12-01", "end": "2026-11-01"})

    assert response.status_code == 400
    assert RANGE_BACKWARDS in response.content.decode()
