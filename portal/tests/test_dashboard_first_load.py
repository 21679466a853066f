"""What the dashboard loads at once comes in one request: the banner brings the header's bell with
it (out of band), so a page view is the page (from the cache) plus that one fragment."""

from django.urls import reverse

from alerts.notifications import alerts_scan
from billing.tests.builders import credit, use

BANNER = reverse("student:alert_banner")
HTMX = {"HX-Request": "true"}


def test_the_dashboards_bell_waits_for_the_banner(student_client):
    page = student_client.get("/").content.decode()

    assert f'<a id="alert-bell" class="bell" href="{reverse("student:alerts")}">' in page
    assert f'hx-get="{BANNER}?bell=1" hx-trigger="load' in page


def test_the_banner_brings_the_bell_with_its_count(student_client, student):
    credit(student, 120)
    use(student, 110)  # low balance: an alert in the bell
    alerts_scan()

    text = student_client.get(BANNER, {"bell": "1"}, headers=HTMX).content.decode()

    assert 'id="alert-bell"' in text and 'hx-swap-oob="true"' in text
    assert 'data-testid="unread-count">1<' in text


def test_the_banner_alone_has_no_bell(student_client):
    assert 'id="alert-bell"' not in student_client.get(BANNER, headers=HTMX).content.decode()


def test_other_pages_load_their_bell_themselves(student_client):
    page = student_client.get(reverse("student:cards")).content.decode()

    assert f'hx-get="{reverse("student:alert_bell")}" hx-trigger="load"' in page
