"""Files people download, shared by the student's pages and the console."""

import csv
import tempfile
from decimal import Decimal, InvalidOperation

from django.http import FileResponse, HttpResponse, StreamingHttpResponse

from billing.receipts import receipt_pdf
from billing.statements import statement_csv_rows, statement_pdf

# What a spreadsheet would run as a formula at the start of a cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET_TITLE_MAX = 31  # Excel's longest sheet name


def receipt_file(receipt):
    """A receipt's or credit note's PDF as a download. The caller has checked who is asking."""
    response = HttpResponse(receipt_pdf(receipt=receipt), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{receipt.filename}"'
    return response


def privacy_export_file(archive_file, filename):
    """A student's data (portal.privacy's ZIP in its temporary file) as a download, streamed from the
    file, which is closed once sent. The caller has checked who is asking."""
    return FileResponse(archive_file, as_attachment=True, filename=filename, content_type="application/zip")


def statement_pdf_file(statement):
    """A statement of account as a PDF download, in the active language. The caller has checked who
    is asking."""
    response = HttpResponse(statement_pdf(statement=statement), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{statement.filename("pdf")}"'
    return response


def statement_csv_file(statement):
    """A statement of account as CSV, streamed row by row, in the active language."""
    return csv_file(statement_csv_rows(statement=statement), filename=statement.filename("csv"))


def csv_file(rows, *, filename):
    """Rows (lists of cells) as a CSV download, written and sent one row at a time, so that a long
    export never sits in memory. The caller has checked who is asking."""
    writer = csv.writer(_Echo())
    return StreamingHttpResponse(
        (writer.writerow([_inert(cell) for cell in row]) for row in rows),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def workbook_file(sheets, *, filename):
    """(title, rows) pairs as one spreadsheet (.xlsx), a sheet each, numbers as numbers. openpyxl's
    write-only mode puts each row in a temporary file as it comes, so no sheet is held in memory; the
    finished workbook is sent from disk. The caller has checked who is asking."""
    from openpyxl import Workbook  # only where workbooks are made

    workbook = Workbook(write_only=True)
    for title, rows in sheets:
        sheet = workbook.create_sheet(title=title[:SHEET_TITLE_MAX])
        for row in rows:
            sheet.append([_workbook_cell(sheet, cell) for cell in row])
    saved = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it once sent)
    workbook.save(saved)
    saved.seek(0)
    return FileResponse(saved, as_attachment=True, filename=filename, content_type=XLSX)


def _workbook_cell(sheet, value):
    """A cell as it is written: openpyxl would store a text that starts with "=" (a reason typed
    "=1+2") as a formula, so that one is written as a text cell, shown exactly as typed. A stored
    text is never run, whatever it starts with."""
    if not (isinstance(value, str) and value.startswith("=")):
        return value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell


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
