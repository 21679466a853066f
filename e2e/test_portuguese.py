"""The student journey in European Portuguese, in Chromium: a browser that asks for pt-PT gets the
sign-in page in Portuguese, the demo's Portuguese student buys and renews in Portuguese, with money
and dates as Portugal writes them, and the receipt PDF reads back in Portuguese."""

import re
from pathlib import Path

from playwright.sync_api import expect

from billing.models import Payment
from billing.tests.pdfs import pdf_text
from e2e.navigation import follow_link
from portal.demo import DEMO_PASSWORD
from portal.models import User

PORTUGUESE_READER = "joao.aluno@example.com"  # Standard (10 h, 150,00 €) with 5.5 h left


def test_a_portuguese_student_buys_renews_and_reads_the_receipt_in_portuguese(
    new_context, live_server, demo_data, add_card_in_browser, screenshot
):
    page = new_context(locale="pt-PT").new_page()
    page.goto(f"{live_server.url}/")
    expect(page.locator("html")).to_have_attribute("lang", "pt-pt")
    page.get_by_label("Email").fill(PORTUGUESE_READER)
    page.get_by_label("Palavra-passe").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Iniciar sessão").click()
    page.wait_for_url(f"{live_server.url}/")
    expect(page.get_by_test_id("balance")).to_have_text("5,5 h")
    # The way back to English is named in English, whatever the page's language.
    expect(page.get_by_role("button", name="English", exact=True)).to_have_attribute("lang", "en")

    add_card_in_browser(page, "4242424242424242", save_button="Guardar cartão", remove_button="Remover")
    follow_link(page, "As minhas horas")
    page.get_by_role("button", name=re.compile(r"^Comprar 5 h por 80,00\s€ com Visa 4242")).click()
    result = page.locator("#payment-result")
    expect(result).to_contain_text("Pagamento recebido.", timeout=15_000)
    expect(page.get_by_test_id("balance")).to_have_text("10,5 h")

    # The purchase refreshed the page's packages and buttons: press the renewal once they have landed
    # (a button pressed while its part is being swapped can be lost with the old part).
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name=re.compile(r"^Renovar 10 h por 150,00\s€ com Visa 4242")).click()
    expect(result).to_contain_text(
        re.compile(r"Pagamento recebido\. Mais 10 h no saldo \(Standard, 150,00\s€\)\."), timeout=15_000
    )
    expect(page.get_by_test_id("balance")).to_have_text("20,5 h")
    screenshot(page, "pt-renewed")

    follow_link(page, "Recibos")
    expect(page.get_by_role("heading", name="Recibos")).to_be_visible()
    receipt = Payment.objects.filter(account__user__email=PORTUGUESE_READER).latest("created_at").receipt
    with page.expect_download() as download_info:
        page.locator(f"a[href$='{receipt.number}.pdf'], a[download]").first.click()
    text = pdf_text(Path(download_info.value.path()).read_bytes())
    assert "Recibo" in text and receipt.number in text
    assert re.search(r"150,00\s€", text) and "Standard: 10 h de explicações" in text
    assert User.objects.get(email=PORTUGUESE_READER).language == "pt-pt"
