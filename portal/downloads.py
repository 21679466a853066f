"""Files people download, shared by the student's pages and the console."""

from django.http import HttpResponse

from billing.receipts import receipt_pdf


def receipt_file(receipt):
    """A receipt's or credit note's PDF as a download. The caller has checked who is asking."""
    response = HttpResponse(receipt_pdf(receipt=receipt), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{receipt.filename}"'
    return response
