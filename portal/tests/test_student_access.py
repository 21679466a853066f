"""Every student page is behind the student guard, and every student route with an id finds only
the signed-in student's own things: another student's id answers 404, as an id that does not
exist would. The routes are read from the URL resolver, so a route added tomorrow is checked too."""

import pytest
from django.urls import reverse

from alerts.models import Notification
from billing.tests.builders import make_paid_payment, make_student, make_subscription_plan, subscribe
from portal.tests.routes import accepted_method, request, routes

pytestmark = pytest.mark.django_db

STUDENT = routes("student")
WITH_IDS = [route for route in STUDENT if route.ids]


@pytest.fixture
def owner(localstripe):
    return make_paid_payment(localstripe, account=make_student("owner@example.com")).account


@pytest.fixture
def ids(owner, localstripe):
    """One object of the owner's behind every kind of id a student route takes."""
    payment = owner.payments.get()
    alert = Notification.objects.create(
        recipient=owner.user, kind=Notification.Kind.PAYMENT_SUCCEEDED, dedupe_key="access", title="Paid"
    )
    subscription = subscribe(owner, make_subscription_plan(), localstripe)
    return {
        "subscription_id": subscription.pk,
        "lot_id": payment.lot_id,
        "payment_id": payment.pk,
        "receipt_id": payment.receipt.pk,
        "notification_id": alert.pk,
        "card_id": payment.payment_method_id,
    }


def test_the_walk_finds_the_student_pages_and_their_ids():
    assert len(STUDENT) >= 15 and len(WITH_IDS) >= 5


@pytest.mark.parametrize("route", STUDENT, ids=lambda route: route.name)
def test_every_student_route_is_behind_the_student_guard(route):
    assert getattr(route.view, "student_view", False), f"{route.name} is not wrapped by student_view"
    assert route.view.varies_on_htmx


def test_signed_out_visitors_are_asked_to_sign_in_everywhere(client, ids):
    for route in STUDENT:
        for method in ("GET", "POST"):
            response = request(client, route, ids, method)
            if response.status_code != 405:
                assert response.status_code == 302, f"{method} {route.name}"
                assert response["Location"].startswith(reverse("account_login")), f"{method} {route.name}"


def test_another_students_ids_are_not_found_anywhere(client, owner, ids):
    client.force_login(owner.user)
    methods = {route.name: accepted_method(client, route, ids) for route in WITH_IDS}
    client.force_login(make_student("curious@example.com").user)

    for route in WITH_IDS:
        assert request(client, route, ids, methods[route.name]).status_code == 404, route.name

    client.force_login(owner.user)
    for route in WITH_IDS:  # the same ids are found for their owner
        assert request(client, route, ids, methods[route.name]).status_code != 404, route.name
