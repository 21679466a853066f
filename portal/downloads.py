"""Files people download, shared by the student's pages and the console."""

import csv
from decimal import Decimal, InvalidOperation

from django.http import HttpResponse, StreamingHttpResponse

from billing.receipts import receipt_pdf
from billing.statements import statement_csv_rows, statement_pdf

# What a spreadsheet would run as a formula at the start of a cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def receipt_file(receipt):
    """A receipt's or credit note's PDF as a download. The caller has checked who is asking."""
    response = HttpResponse(receipt_pdf(receipt=receipt), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{receipt.filename}"'
    return response


def statement_pdf_file(statement):
    """A statement of account as a PDF download, in the active language. The caller has checked who
    is asking."""
    response = HttpResponse(statement_pdf(statement=statement), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{statement.filename("pdf")}"'
    return response


def statement_csv_file(statement):
    """A statement of account as CSV, streamed row by row, in the active language."""
    writer = csv.writer(_Echo())
    rows = (writer.writerow([_inert(cell) for cell in row]) for row in statement_csv_rows(statement=statement))
    return StreamingHttpResponse(
        rows,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{statement.filename("csv")}"'},
    )


def _inert(value):
    """A text cell a spreadsheet would run as a formula (a reason typed "=1+2") is quoted as text; a
    plain number ("-0.75") stays a number."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS and not _is_number(value):
        return f"'{value}"
    return value


def _is_number(text):
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return text.strip() == text


class _Echo:
    """csv.writer writes into this and gets the line back, to be streamed."""

    def write(self, value):
        return value
