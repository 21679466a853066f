"""Reading a PDF back as the tests check it: its text, page by page."""

import io

from pypdf import PdfReader


def pdf_text(content):
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
