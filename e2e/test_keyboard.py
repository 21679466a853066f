"""The site by keyboard alone (Tab, Shift+Tab, Enter, typing into the focused field): sign in, add a
card, buy a package and open its receipt; make another card the default. At every step the focused
element shows a focus ring; after each HTMX swap focus is somewhere sensible (static/js/a11y.js) and
the outcome is said in the page's one polite live region (#announcer)."""

import re

from playwright.sync_api import expect

from portal.demo import DEMO_PASSWORD

NEW_STUDENT = "cleo.student@example.com"  # no hours, no card
RICH_STUDENT = "ana.student@example.com"
FINANCE = "staff@example.com"
FOCUS_RING_COLOUR = "rgb(20, 32, 122)"  # portal.css --focus

FOCUSED = """() => {
  const element = document.activeElement;
  if (!element || element === document.body) return null;
  const style = getComputedStyle(element);
  const box = element.getBoundingClientRect();
  const label = element.labels && element.labels[0] ? element.labels[0].innerText : "";
  const text = element.getAttribute("aria-label") || label || element.getAttribute("placeholder") || element.innerText;
  return {
    name: (text || "").replace(/\\s+/g, " ").trim(),
    element: element.outerHTML.slice(0, 120),
    ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
    colour: style.outlineColor,
    shown: box.width > 0 && box.height > 0,
  };
}"""


class Keyboard:
    """Moves through a page with Tab and Shift+Tab, checking every stop's focus ring on the way."""

    def __init__(self, page):
        self.page = page

    def focused(self):
        """The focused element, which must show that it is: a ring of the focus colour, on screen."""
        focused = self.page.evaluate(FOCUSED)
        assert focused is not None, "nothing has focus"
        assert focused["ring"] and focused["colour"] == FOCUS_RING_COLOUR, f"no focus ring: {focused}"
        assert focused["shown"], f"focus on something invisible: {focused['element']}"
        return focused

    def tab_to(self, name, *, backwards=False, stops=150):
        """Tab (or Shift+Tab) until the focused element's name matches the regular expression `name`."""
        seen = []
        for _ in range(stops):
            self.page.keyboard.press("Shift+Tab" if backwards else "Tab")
            if self.page.evaluate(FOCUSED) is None:  # past the end of the page: on to its start
                continue
            focused = self.focused()
            if re.search(name, focused["name"]):
                return focused
            seen.append(focused["name"])
        raise AssertionError(f"no {name!r} by keyboard; went through {seen}")

    def type_into(self, name, text):
        """Type into the field called `name`: the focused one, or the next that Tab reaches."""
        focused = self.page.evaluate(FOCUSED)
        if focused is None or not re.search(name, focused["name"]):
            self.tab_to(name)
        self.focused()
        self.page.keyboard.type(text)

    def every_stop(self, stops=400):
        """Tab through the whole page once, from its top; the names of the stops, in order."""
        self.page.locator("body").focus()
        names, elements = [], set()
        for _ in range(stops):
            self.page.keyboard.press("Tab")
            if self.page.evaluate(FOCUSED) is None:
                break
            focused = self.focused()
            if focused["element"] in elements and focused["name"] == names[0]:
                break  # round again
            elements.add(focused["element"])
            names.append(focused["name"])
        return names


def announced(page):
    return page.locator("#announcer")


def sign_in_by_keyboard(page, live_server, email):
    page.goto(f"{live_server.url}/accounts/login/")
    keys = Keyboard(page)
    keys.tab_to(r"^Email")
    page.keyboard.type(email)
    keys.tab_to(r"^Password")
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    return keys


def add_card_by_keyboard(keys, number):
    """The card fields of the Stripe stand-in; it moves on by itself once a field is complete."""
    keys.type_into(r"^number$", number)
    keys.type_into(r"^exp_month$", "12")
    keys.type_into(r"^exp_year$", "31")
    keys.type_into(r"^cvc$", "123")
    keys.type_into(r"^postal_code$", "10115")
    keys.tab_to(r"^Save card$")
    keys.page.keyboard.press("Enter")


def test_a_student_adds_a_card_buys_a_package_and_opens_its_receipt_by_keyboard(page, demo_data, live_server):
    keys = sign_in_by_keyboard(page, live_server, NEW_STUDENT)

    # A new student's dashboard offers the card form with the packages.
    add_card_by_keyboard(keys, "4242424242424242")
    buy = page.get_by_role("button", name=re.compile(r"^Buy 10 h for €150.00 with Visa 4242"))
    expect(buy).to_be_visible()
    # The form that had focus is gone with the swap: focus is on the packages' heading, not lost.
    expect(page.locator("#plans-title")).to_be_focused()
    keys.focused()

    keys.tab_to(r"^Buy 10 h for €150.00 with Visa 4242")
    page.keyboard.press("Enter")
    expect(announced(page)).to_contain_text("Payment received. 10 h added (Standard, €150.00).")
    expect(page.locator("#payment-result")).to_be_focused()
    keys.focused()
    expect(page.get_by_test_id("balance")).to_have_text("10 h")

    keys.tab_to(r"^Receipts$", backwards=True)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/receipts/")
    keys.tab_to(r"^Download receipt-")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename.startswith("receipt-")


def test_a_student_makes_another_card_the_default_by_keyboard(page, demo_data, live_server):
    keys = sign_in_by_keyboard(page, live_server, NEW_STUDENT)
    keys.tab_to(r"^Cards$")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/cards/")

    add_card_by_keyboard(keys, "4242424242424242")
    expect(page.get_by_role("button", name="Remove Visa 4242")).to_be_visible()
    expect(page.locator("#card-list .saved-cards")).to_be_focused()  # the list that now has it
    add_card_by_keyboard(keys, "5555555555554444")
    expect(page.get_by_role("button", name="Make default: Visa 4444")).to_be_visible()

    keys.tab_to(r"^Make default: Visa 4444$")
    page.keyboard.press("Enter")
    expect(announced(page)).to_have_text("Visa 4444 is now your default card.")
    expect(page.locator("#card-list .saved-cards")).to_be_focused()
    keys.focused()
    expect(page.get_by_role("button", name="Make default: Visa 4242")).to_be_visible()


def test_every_control_of_the_students_pages_shows_its_focus(page, demo_data, live_server):
    keys = sign_in_by_keyboard(page, live_server, RICH_STUDENT)
    for path in ["/", "/cards/", "/subscription/", "/account/"]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        stops = keys.every_stop()
        assert stops[0] == "Skip to content"
        assert "Sign out" in stops


def test_every_control_of_a_console_page_shows_its_focus(page, demo_data, live_server, staff_sign_in):
    staff_sign_in(page, FINANCE)
    keys = Keyboard(page)
    for path in ["/console/", "/console/payments/", "/console/students/"]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert "Sign out" in keys.every_stop()
