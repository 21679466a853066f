"""The Content Security Policy in Chromium. Every browser test fails when a page it opens breaks the
policy (the `csp_violations` fixture in conftest.py), so the whole student and staff journey is
covered; these tests prove that the collector sees a violation, and walk the pages no journey
opens: the Django admin and the error pages."""

import re

from playwright.sync_api import expect

from portal.demo import DEMO_PASSWORD, demo_totp_code

OPERATOR = "admin@example.com"  # the demo's superuser, with TOTP


def test_inline_code_on_our_pages_is_refused_and_reported(page, live_server, transactional_db, csp_violations):
    response = page.goto(f"{live_server.url}/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]

    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.inlineScriptRan = true";
          document.body.append(script);
          document.body.setAttribute("style", "background: red");
        }"""
    )

    expect(page.get_by_role("button", name="Sign In")).to_be_visible()
    assert page.evaluate("window.inlineScriptRan") is None
    reports = list(csp_violations.reports)
    csp_violations.reports.clear()  # seen and expected: the fixture's own check must not fail this test
    assert any("script-src-elem refused inline on" in report for report in reports), reports
    assert any("style-src-attr refused inline on" in report for report in reports), reports
    assert any(report.startswith("console: ") for report in reports), reports


def test_the_django_admin_works_within_the_policy(page, live_server, demo_data):
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Email").fill(OPERATOR)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    page.locator("input[name=code]").fill(demo_totp_code())
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

    page.get_by_role("link", name="Users").first.click()
    expect(page.get_by_role("heading", name="Select user to change")).to_be_visible()
    page.get_by_role("link", name=OPERATOR).click()
    expect(page.get_by_role("heading", name="Change user")).to_be_visible()
    page.goto(f"{live_server.url}/admin/auth/group/add/")
    page.get_by_label("Filter").first.fill("payment")  # the permissions' two-list widget, in JavaScript
    expect(page.get_by_role("heading", name="Add group")).to_be_visible()


def test_the_not_found_page_is_within_the_policy(page, live_server, transactional_db):
    response = page.goto(f"{live_server.url}/no-such-page/")

    assert response.status == 404
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", name="This page does not exist")).to_be_visible()
