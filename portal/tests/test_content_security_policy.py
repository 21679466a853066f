"""The Content Security Policy: every page allows scripts, styles, frames and connections from our
own origin and Stripe.js's only, never inline code, and no other site may frame it. The browser
tests (e2e/) check that no page breaks it; these check the header and the templates themselves."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from conftest import console_sign_in
from portal.content_security import content_security_policy

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# Rendered into emails and PDFs (WeasyPrint), never served to a browser, so no policy applies.
NOT_FOR_BROWSERS = ("email", "billing")
# What a policy without 'unsafe-inline' / 'unsafe-eval' refuses, written into a template.
INLINE_CODE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>"  # a script element with a body instead of a src
    r"|<style\b"  # a style element
    r"|\sstyle=[\"']"  # a style attribute
    r"|\son[a-z]+=[\"']"  # an event handler attribute: onclick="..."
    r"|\shx-on[:-]"  # htmx's inline handlers, evaluated as code
    r"|javascript:",  # javascript: URLs
    re.IGNORECASE,
)


def directives(response):
    header = response["Content-Security-Policy"]
    return {name: rest.split() for name, _, rest in (part.strip().partition(" ") for part in header.split(";"))}


def test_a_page_allows_only_our_origin_and_refuses_inline_code_and_framing(client):
    policy = directives(client.get(reverse("account_login")))

    assert policy["default-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in source for sources in policy.values() for source in sources)


def test_the_policy_allows_the_stripe_js_the_pages_load(client, localstripe):
    """Tests point STRIPE_JS_URL at their own localstripe: the policy follows it."""
    policy = directives(client.get(reverse("account_login")))

    assert policy["script-src"] == ["'self'", localstripe.url]
    assert policy["connect-src"] == ["'self'", localstripe.url]  # the stand-in's script and its API calls
    assert policy["frame-src"] == [localstripe.url]


def test_real_stripe_js_gets_the_origins_stripe_documents():
    policy = content_security_policy(stripe_js_url="https://js.stripe.com/v3/")["DIRECTIVES"]

    assert policy["script-src"] == ["'self'", "https://js.stripe.com", "https://*.js.stripe.com"]
    assert policy["frame-src"] == ["https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"]
    assert policy["connect-src"] == ["'self'", "https://api.stripe.com"]


def test_console_admin_and_error_pages_carry_the_policy(client, finance_user):
    finance_user.is_superuser = True
    finance_user.save()
    console_sign_in(client, finance_user)

    for url in [reverse("console:index"), reverse("admin:index"), "/no-such-page/"]:
        response = client.get(url)
        assert response.status_code in (200, 404), url
        assert directives(response)["frame-ancestors"] == ["'none'"], url


def test_a_refused_form_post_answers_with_our_page_and_no_inline_style(password):
    """Django's own CSRF failure page styles itself inline; ours uses the stylesheet."""
    client = Client(enforce_csrf_checks=True)

    response = client.post(reverse("account_login"), {"login": "ana@example.com", "password": password})

    assert response.status_code == 403
    text = response.content.decode()
    assert "css/portal.css" in text
    assert "<style" not in text and "style=" not in text


def test_no_template_a_browser_sees_holds_inline_code():
    offending = [
        f"{path.relative_to(TEMPLATES)}:{line_number}: {line.strip()}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        if path.relative_to(TEMPLATES).parts[0] not in NOT_FOR_BROWSERS
        for line_number, line in enumerate(path.read_text().splitlines(), start=1)
        if INLINE_CODE.search(line)
    ]

    assert offending == []


@pytest.mark.parametrize(
    "snippet",
    [
        "<script>alert(1)</script>",
        '<script type="module">go()</script>',
        "<style>p {}</style>",
        '<p style="color: red">',
        '<button onclick="go()">',
        '<form hx-on:submit="go()">',
        '<a href="javascript:go()">',
    ],
)
def test_the_template_check_sees_inline_code(snippet):
    assert INLINE_CODE.search(snippet)


@pytest.mark.parametrize(
    "snippet",
    ['<script src="/static/js/payments.js" defer></script>', '<p class="muted" data-confirm="Sure?">'],
)
def test_the_template_check_leaves_scripts_from_files_alone(snippet):
    assert not INLINE_CODE.search(snippet)
