"""Browser tests: the real site under pytest-django's live server, driven in Chromium.

On these machines Playwright cannot download its own browser, so Debian's Chromium is launched
where it exists; elsewhere Playwright's own browser is used.
"""

import contextlib
import fcntl
import io
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.urls import Resolver404, resolve
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from portal.demo import DEMO_PASSWORD, demo_totp_code

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
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-results"
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
AXE_SUMMARY = SCREENSHOTS / "axe-summary.json"
# What fails a test; the lesser impacts are only counted in the summary.
AXE_FAILING_IMPACTS = ("serious", "critical")


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


# axe-core's own script comes first (Playwright injects both into every frame, exempt from the policy).
# The top document checks itself, with its frames, once it has loaded and settled and again after
# each HTMX swap (debounced, one run at a time), and hands every result to the test. A page also
# starts a check when it is left, and every page still open is checked at the end of the test
# (AxeChecks). A page left at once may go unchecked: holding the next page's request until its check
# arrived (a Playwright route) made Stripe.js's requests late under load, and a 3-D Secure hand-off
# never opened.
CHECK_ACCESSIBILITY = """
(() => {
  // Django's own admin (for operators, its markup not ours) is left out.
  if (window.top !== window.self || location.pathname.startsWith("/admin/")) return;
  const quietly = () => {};
  let queue = Promise.resolve();
  let timer = null;
  const LOADING = ".htmx-request";  // dimmed while HTMX fetches its new content
  const pause = () => new Promise((resolve) => setTimeout(resolve, 50));
  const check = async () => {
    try {
      for (let waited = 0; waited < 1000 && document.querySelector(LOADING); waited += 50) await pause();
      // A fade still running (a swapped table settling) would be judged at its blended colours.
      const fading = document.getAnimations().map((animation) => animation.finished.catch(quietly));
      await Promise.race([Promise.all(fading), new Promise((resolve) => setTimeout(resolve, 1000))]);
      // What is still loading (a request held up by a navigation) is left out rather than judged dimmed.
      const context = { include: [document], exclude: [...document.querySelectorAll(LOADING)] };
      // No preload: axe would read the stylesheets through <style> elements, which the policy refuses.
      const options = { resultTypes: ["violations"], restoreScroll: true, preload: false };
      const results = await axe.run(context, options);
      return {
        url: location.href,
        violations: results.violations.map((rule) => ({
          id: rule.id,
          impact: rule.impact,
          help: rule.help,
          nodes: rule.nodes.map((node) => ({
            target: node.target.flat(Infinity).join(" >>> "),
            summary: (node.failureSummary || "").split("\\n").slice(1).join(" ").trim(),
          })),
        })),
      };
    } catch (error) {
      // The page changed under axe: its next check covers it (a check the test asked for fails).
      return { url: location.href, violations: [], error: String(error) };
    }
  };
  // One check at a time; the caller gets its result (AxeChecks.check evaluates this).
  window.__checkAccessibility = () => {
    clearTimeout(timer);
    queue = queue.then(check);
    return queue;
  };
  // The page's own checks hand their result over without waiting for an answer, which could not
  // come while a navigation is held (Playwright answers through the document).
  const report = (extra) =>
    window.__checkAccessibility().then((result) => window.reportAxeResults({ ...result, ...extra })).catch(quietly);
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => report({}), 250);
  };
  window.addEventListener("load", soon);
  document.addEventListener("htmx:afterSettle", soon);
  // Leaving this document (a link, a form, a script's redirect): check it once more on the way out.
  navigation.addEventListener("navigate", (event) => {
    if (!event.destination.sameDocument) report({});
  });
})();
"""


def page_name(url):
    """A page's URL path as its route (`/console/payments/<int:pk>/`), so one page's visits count together."""
    path = urlsplit(url).path or "/"
    try:
        return "/" + resolve(path).route
    except Resolver404:
        return path


class AxeChecks:
    """What axe-core found on the pages of one test: each violation once, by page, rule and element."""

    def __init__(self, summary):
        self.summary = summary
        self.violations = {}

    def watch(self, context):
        if not AXE_SCRIPT.exists():
            pytest.fail(f"{AXE_SCRIPT} is missing: `make node-deps` (npm ci) installs axe-core")
        context.expose_function("reportAxeResults", self._from_page)
        context.add_init_script(path=AXE_SCRIPT)
        context.add_init_script(CHECK_ACCESSIBILITY)

    def check(self, page):
        """Check `page` now (a page without JavaScript is not checked)."""
        report = None
        with contextlib.suppress(PlaywrightError):  # closed, or gone with its context
            report = page.evaluate("() => window.__checkAccessibility && window.__checkAccessibility()")
        if report:
            assert "error" not in report, f"axe-core could not check {report['url']}: {report['error']}"
            self._from_page(report)

    def failures(self):
        return [v for v in self.violations.values() if v["impact"] in AXE_FAILING_IMPACTS]

    def _from_page(self, report):
        if "error" in report:
            return
        name = page_name(report["url"])
        self.summary.checked(name)
        for rule in report["violations"]:
            for node in rule["nodes"]:
                found = {"page": name, "url": report["url"], "id": rule["id"], "impact": rule["impact"]}
                found.update(help=rule["help"], target=node["target"], summary=node["summary"])
                self.violations.setdefault((name, rule["id"], node["target"]), found)
                self.summary.found(name, rule["id"], rule["impact"], node["target"])


class AxeSummary:
    """Violations per page across a run, for test-results/axe-summary.json. Each test process (one
    per pytest-xdist worker) merges its own into the file under a lock when it ends; `make test` and
    `make e2e` start the file afresh, other runs add to it."""

    def __init__(self):
        self.pages = {}

    def _page(self, name):
        return self.pages.setdefault(name, {"checks": 0, "rules": {}})

    def checked(self, name):
        self._page(name)["checks"] += 1

    def found(self, name, rule_id, impact, target):
        rule = self._page(name)["rules"].setdefault(rule_id, {"impact": impact, "targets": []})
        if target not in rule["targets"]:
            rule["targets"].append(target)

    def merge_into(self, path):
        if not self.pages:
            return
        path.parent.mkdir(exist_ok=True)
        with open(path, "a+", encoding="utf-8") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            file.seek(0)
            try:
                pages = json.loads(file.read() or "{}").get("pages", {})
            except ValueError:
                pages = {}
            for name, mine in self.pages.items():
                page = pages.setdefault(name, {"checks": 0, "rules": {}})
                page["checks"] += mine["checks"]
                for rule_id, rule in mine["rules"].items():
                    theirs = page["rules"].setdefault(rule_id, {"impact": rule["impact"], "targets": []})
                    theirs["targets"] = sorted(set(theirs["targets"]) | set(rule["targets"]))
            for page in pages.values():
                impacts = {}
                for rule in page["rules"].values():
                    impacts[rule["impact"]] = impacts.get(rule["impact"], 0) + len(rule["targets"])
                page["violations"] = impacts
            file.seek(0)
            file.truncate()
            json.dump({"pages": dict(sorted(pages.items()))}, file, indent=2, ensure_ascii=False)
            file.write("\n")


@pytest.fixture(scope="session")
def axe_summary():
    summary = AxeSummary()
    yield summary
    summary.merge_into(AXE_SUMMARY)


@pytest.fixture(autouse=True)
def axe_violations(axe_summary):
    """Every browser test fails if axe-core found a serious or critical violation on a page it opened."""
    checks = AxeChecks(axe_summary)
    yield checks
    failures = checks.failures()
    assert not failures, "axe-core found accessibility violations:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}) on {v['url']}: {v['target']}: {v['help']}. {v['summary']}" for v in failures
    )


@pytest.fixture
def new_context(new_context, csp_violations, axe_violations):
    """pytest-playwright's contexts (also behind `context` and `page`), watched for CSP violations and
    checked by axe-core; every page still open at the end of the test is checked once more."""
    contexts = []

    def new_watched_context(**options):
        context = new_context(**options)
        csp_violations.watch(context)
        axe_violations.watch(context)
        contexts.append(context)
        return context

    yield new_watched_context
    for context in contexts:
        for page in context.pages:
            axe_violations.check(page)


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
def staff_sign_in(live_server):
    """Sign a demo staff member in as they would: password, then the TOTP code `make totp` prints."""

    def sign_in_as(page, email):
        cache.clear()  # allauth takes a code once per user: an earlier test may have used this one
        page.goto(f"{live_server.url}/console/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
        if 30 - time.time() % 30 < 3:  # a code read at the very end of its window may arrive expired
            time.sleep(3.2)
        page.locator("input[name=code]").fill(demo_totp_code())
        page.get_by_role("button", name="Sign In").click()
        page.wait_for_url(f"{live_server.url}/console/")
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

    def add(page, number, *, authenticate=None, saved=True, save_button="Save card", remove_button="Remove"):
        page.goto(f"{live_server.url}/cards/")
        page.get_by_placeholder("number").fill(number)
        page.get_by_placeholder("exp_month").fill("12")
        page.get_by_placeholder("exp_year").fill("31")
        page.get_by_placeholder("cvc").fill("123")
        page.get_by_placeholder("postal_code").fill("10115")
        page.get_by_role("button", name=save_button).click()
        if authenticate is not None:
            answer = "Complete authentication" if authenticate else "Fail authentication"
            page.get_by_role("button", name=answer).click()
        if saved:  # wait for the refreshed list, not just the form's "saved" line
            expect(page.get_by_role("button", name=f"{remove_button} Visa {number[-4:]}")).to_be_visible()
        return page

    return add
