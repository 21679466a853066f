"""Moving between pages the way a student does, by their links."""


def follow_link(page, name):
    """Click the link called `name` and wait until the new page's scripts have run: a button pressed
    before htmx has started posts its plain form instead, a whole page rather than the fragment the
    test is about (that fallback works, and has tests of its own with JavaScript off)."""
    page.get_by_role("link", name=name, exact=True).click()
    page.wait_for_load_state()
