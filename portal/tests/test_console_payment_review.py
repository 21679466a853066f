"""The console's end of a payment left for review: Finance sees what Stripe charged, may refund
that, and marks the payment resolved with a reason; Support may only read."""

import pytest
from django.urls import reverse

from billing.models import AuditEntry, Payment
from billing.tests.builders import make_paid_payment


@pytest.fixture
def in_review(localstripe):
    payment = make_paid_payment(localstripe)
    Payment.objects.filter(pk=payment.pk).update(
        status=Payment.Status.NEEDS_REVIEW,
        lot=None,
        stripe_amount_cents=1500,
        stripe_currency="EUR",
        failure_code=Payment.Failure.AMOUNT_MISMATCH,
        failure_message="Stripe charged €15.00 instead of €150.00. No hours were added.",
    )  # what Stripe charging another amount leaves
    return payment


def test_finance_sees_what_stripe_charged_and_may_refund_or_resolve_it(finance_client, in_review):
    page = finance_client.get(reverse("console:payment", args=[in_review.pk])).content.decode()

    assert "Charged by Stripe" in page and "€15.00" in page
    assert reverse("console:refund_create", args=[in_review.pk]) in page
    assert reverse("console:payment_resolve", args=[in_review.pk]) in page
    form = finance_client.get(reverse("console:refund_create", args=[in_review.pk])).content.decode()
    assert "was charged €15.00 for Standard" in form


def test_finance_resolves_it_with_a_reason(finance_client, finance_user, in_review):
    url = reverse("console:payment_resolve", args=[in_review.pk])

    response = finance_client.post(url, {"reason": "Refunded the €15.00 Stripe charged"})

    assert response.status_code == 302 and response["Location"] == reverse("console:payment", args=[in_review.pk])
    in_review.refresh_from_db()
    assert in_review.status == Payment.Status.RESOLVED
    entry = AuditEntry.objects.get(action="payment.resolve")
    assert (entry.actor, entry.reason) == (finance_user, "Refunded the €15.00 Stripe charged")
    page = finance_client.get(reverse("console:payment", args=[in_review.pk])).content.decode()
    assert "Resolved by staff" in page and url not in page


def test_resolving_without_a_reason_or_twice_is_a_message(finance_client, in_review):
    url = reverse("console:payment_resolve", args=[in_review.pk])

    assert finance_client.post(url, {"reason": " "}).status_code == 200
    finance_client.post(url, {"reason": "Nothing was needed"})
    again = finance_client.post(url, {"reason": "Nothing was needed"})

    assert again.status_code == 200
    assert (
        "This payment is not waiting for review (it is resolved by staff); nothing was changed."
        in again.content.decode()
    )
    assert AuditEntry.objects.filter(action="payment.resolve").count() == 1


def test_support_may_not_resolve_it(support_client, in_review):
    response = support_client.post(reverse("console:payment_resolve", args=[in_review.pk]), {"reason": "Looks fine"})

    assert response.status_code == 403
    in_review.refresh_from_db()
    assert in_review.status == Payment.Status.NEEDS_REVIEW


def test_an_unknown_payment_is_not_found(finance_client, db):
    assert finance_client.get(reverse("console:payment_resolve", args=[999999])).status_code == 404
