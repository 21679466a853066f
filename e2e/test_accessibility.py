"""Every main page of the student site and of the staff console, in English and in Portuguese, checked by
axe-core (e2e/conftest.py fails a test on any serious or critical violation); the console's detail
pages also at a phone's 390 px, where nothing may scroll sideways; and no motion for those who ask
their system for less."""

import pytest
from playwright.sync_api import expect

from billing.models import Account, Dispute, Lot, Payment, Subscription, WebhookEvent

RICH_STUDENT = "ana.student@example.com"  # packages, sessions, purchases, receipts, alerts
SUBSCRIBER = "dina.student@example.com"
FINANCE = "staff@example.com"  # sees and may do everything in the console
LANGUAGES = ["en", "pt-pt"]
PHONE = {"width": 390, "height": 844}


def in_language(page, language):
    """Switch with the header's chooser, as a person would (a student's or staff member's choice is
    saved on them, so the pages after this one come in that language too)."""
    if language != "en":
        page.get_by_role("button", name="Português").click()
    expect(page.locator("html")).to_have_attribute("lang", language)


def visit(page, axe_violations, url):
    """Open `url`, let its HTMX fragments (the alert bell, banners) arrive, and have axe check it."""
    response = page.goto(url)
    assert response.ok, f"{url} answered {response.status}"
    page.wait_for_load_state("networkidle")
    axe_violations.check(page)
    return page


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_student_page_passes_axe(page, demo_data, sign_in, live_server, axe_violations, language):
    sign_in(page, RICH_STUDENT)
    in_language(page, language)
    lot = Lot.objects.filter(account__user__email=RICH_STUDENT).order_by("-purchased_at").first()

    for path in ["/", f"/lots/{lot.pk}/", "/cards/", "/receipts/", "/subscription/", "/alerts/", "/account/"]:
        visit(page, axe_violations, f"{live_server.url}{path}")
        expect(page.locator("html")).to_have_attribute("lang", language)
        expect(page.get_by_role("heading", level=1).first).to_be_visible()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_subscribers_pages_pass_axe(page, demo_data, sign_in, live_server, axe_violations, language):
    sign_in(page, SUBSCRIBER)
    in_language(page, language)

    for path in ["/", "/subscription/"]:
        visit(page, axe_violations, f"{live_server.url}{path}")


def console_pages():
    """Every list of the console, and one detail page of each kind, from the demo's data."""
    detail_pages = {
        "payment": f"/console/payments/{Payment.objects.filter(status='succeeded').earliest('created_at').pk}/",
        "student": f"/console/students/{Account.objects.get(user__email=RICH_STUDENT).pk}/",
        "dispute": f"/console/disputes/{Dispute.objects.get().pk}/",
        "webhook": f"/console/webhooks/{WebhookEvent.objects.get(stripe_event_id='evt_demo_failed').pk}/",
        "subscription": f"/console/subscriptions/{Subscription.objects.get().pk}/",
    }
    lists = [
        "/console/",
        "/console/payments/",
        "/console/students/",
        "/console/disputes/",
        "/console/fraud/",
        "/console/webhooks/",
        "/console/subscriptions/",
        "/console/refunds/",
        "/console/alerts/",
        "/console/audit/",
        "/console/exports/",
        "/console/system/",
    ]
    return lists, detail_pages


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_console_page_passes_axe(page, demo_data, live_server, staff_sign_in, axe_violations, language):
    staff_sign_in(page, FINANCE)
    in_language(page, language)
    lists, detail_pages = console_pages()

    for path in [*lists, *detail_pages.values()]:
        visit(page, axe_violations, f"{live_server.url}{path}")
        expect(page.locator("html")).to_have_attribute("lang", language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_console_detail_pages_fit_a_phone(
    new_context, demo_data, live_server, staff_sign_in, axe_violations, screenshot, language
):
    page = new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True).new_page()
    staff_sign_in(page, FINANCE)
    in_language(page, language)
    _, detail_pages = console_pages()

    too_wide = {}
    for name, path in detail_pages.items():
        visit(page, axe_violations, f"{live_server.url}{path}")
        screenshot(page, f"console-{name}-{language}-390")
        if page.evaluate("document.documentElement.scrollWidth") > PHONE["width"]:
            too_wide[path] = sticking_out(page)
    assert too_wide == {}, "pages that scroll sideways at 390 px, and what sticks out"


def sticking_out(page):
    """The innermost elements that reach past the right edge of the window."""
    return page.evaluate(
        """(width) => {
          const out = (element) => element.getBoundingClientRect().right > width + 0.5;
          const name = (element) =>
            element.tagName.toLowerCase() +
            (element.id ? `#${element.id}` : "") +
            [...element.classList].map((name) => `.${name}`).join("");
          return [...document.querySelectorAll("body *")]
            .filter((element) => out(element) && ![...element.children].some(out))
            .map((element) => `${name(element)}: ${element.textContent.trim().slice(0, 40)}`)
            .slice(0, 10);
        }""",
        PHONE["width"],
    )


def transitions_and_animations(page):
    """Elements that would move: a transition or an animation longer than nothing."""
    return page.evaluate(
        """() => [...document.querySelectorAll("*")].flatMap((element) => {
          const style = getComputedStyle(element);
          const lasts = (value) => value.split(",").some((part) => parseFloat(part) > 0);
          const animated = style.animationName !== "none" && lasts(style.animationDuration);
          const moving = lasts(style.transitionDuration) || animated;
          return moving ? [element.id || element.className || element.tagName] : [];
        })"""
    )


def test_reduced_motion_turns_every_transition_off(page, demo_data, sign_in, live_server):
    sign_in(page, RICH_STUDENT)
    # The states that fade: a table being loaded, and htmx's request indicator.
    show_loading = """() => {
      document.querySelector(".table-card").classList.add("htmx-request");
      const indicator = document.createElement("span");
      indicator.className = "htmx-indicator";
      document.querySelector(".table-card").append(indicator);
    }"""
    page.evaluate(show_loading)
    assert transitions_and_animations(page) != []  # what the check below would catch

    page.emulate_media(reduced_motion="reduce")
    page.reload()
    page.evaluate(show_loading)

    assert page.evaluate("matchMedia('(prefers-reduced-motion: reduce)').matches")
    assert transitions_and_animations(page) == []
    page.reload()  # the page as it really is, for axe-core's last look (a loading table is dimmed)


def test_the_check_finds_what_it_should(page, demo_data, sign_in):
    """The checker itself, on a real page under its Content Security Policy: an image without a text
    alternative (critical) is found, and pointed at. Asked of the page directly, so that the planted
    image is not counted against the page in the run's summary."""
    sign_in(page, RICH_STUDENT)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)  # the page's own checks are done
    page.evaluate("document.querySelector('main').prepend(Object.assign(new Image(), {id: 'planted', src: '/'}))")
    report = page.evaluate("() => window.__checkAccessibility()")
    page.evaluate("document.getElementById('planted').remove()")

    assert "error" not in report
    found = {(rule["id"], rule["impact"], node["target"]) for rule in report["violations"] for node in rule["nodes"]}
    assert ("image-alt", "critical", "#planted") in found
