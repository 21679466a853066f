"""Browser tests: the real site under pytest-django's live server, driven in Chromium.

On these machines Playwright cannot download its own browser, so Debian's Chromium is launched
where it exists; elsewhere Playwright's own browser is used.
"""

import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from portal.demo import DEMO_PASSWORD

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-results"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    launch_args = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    if DEBIAN_CHROMIUM.exists():
        launch_args["executable_path"] = str(DEBIAN_CHROMIUM)
    return launch_args


@pytest.fixture(scope="session", autouse=True)
def orm_beside_playwright():
    """Playwright's sync API runs an event loop in the test thread, where these tests (and the test
    database set-up) still use the ORM. Allowed for the browser tests only, and undone after them."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def stripe_stand_in(localstripe):
    """Every page loads Stripe.js from the stand-in."""


# Runs before any script of every page, and is itself exempt from the policy (Playwright injects it):
# each violation the page reports goes straight to the test, so a page that navigates loses none.
REPORT_CSP_VIOLATIONS = """
window.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} refused ${event.blockedURI} on ${event.documentURI}` +
      ` (${event.sourceFile || "the page"}:${event.lineNumber}) ${event.sample}`
  );
});
"""


class CspViolations:
    """What every browser context of a test reported against the Content Security Policy: the page's
    own `securitypolicyviolation` events, and Chromium's console messages about the policy (which
    come even with JavaScript off or from a page that navigated away before its event arrived)."""

    def __init__(self):
        self.reports = []

    def watch(self, context):
        context.expose_function("reportCspViolation", self._from_page)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("console", self._from_console)

    def _from_page(self, report):
        self.reports.append(report)

    def _from_console(self, message):
        if "Content Security Policy" in message.text:
            self.reports.append(f"console: {message.text}")


@pytest.fixture(autouse=True)
def csp_violations():
    """Every browser test fails if any page it opened broke the Content Security Policy."""
    violations = CspViolations()
    yield violations
    assert violations.reports == [], "pages broke the Content Security Policy"


@pytest.fixture
def new_context(new_context, csp_violations):
    """pytest-playwright's contexts (also behind `context` and `page`), watched for CSP violations."""

    def new_watched_context(**options):
        context = new_context(**options)
        csp_violations.watch(context)
        return context

    return new_watched_context


@pytest.fixture
def demo_data(transactional_db):
    call_command("seed_demo", "--not-production", stdout=io.StringIO())


@pytest.fixture
def sign_in(live_server):
    """Sign in through the real login page, as a person would."""

    def sign_in_as(page, email):
        page.goto(f"{live_server.url}/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        page.wait_for_url(f"{live_server.url}/")
        return page

    return sign_in_as


@pytest.fixture
def screenshot():
    def take(page, name):
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

    return take


@pytest.fixture
def add_card_in_browser(live_server):
    """Add a card on the cards page through the Stripe.js Card Element, as a student would."""

    def add(page, number, *, authenticate=None, saved=True):
        page.goto(f"{live_server.url}/cards/")
        page.get_by_placeholder("number").fill(number)
        page.get_by_placeholder("exp_month").fill("12")
        page.get_by_placeholder("exp_year").fill("31")
        page.get_by_placeholder("cvc").fill("123")
        page.get_by_placeholder("postal_code").fill("10115")
        page.get_by_role("button", name="Save card").click()
        if authenticate is not None:
            answer = "Complete authentication" if authenticate else "Fail authentication"
            page.get_by_role("button", name=answer).click()
        if saved:  # wait for the refreshed list, not just the form's "saved" line
            expect(page.get_by_role("button", name=f"Remove Visa {number[-4:]}")).to_be_visible()
        return page

    return add
