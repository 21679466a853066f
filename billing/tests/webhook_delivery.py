"""Deliver signed events to our webhook endpoint through Django's test client, as Stripe would."""

from django.conf import settings
from django.urls import reverse

from billing import samples

URL = reverse("billing:stripe_webhook")


def deliver(client, stripe_event, *, secret=None, timestamp=None, payload=None):
    payload = samples.body(stripe_event) if payload is None else payload
    header = samples.signature_header(payload, secret or settings.STRIPE_WEBHOOK_SECRET, timestamp=timestamp)
    return client.post(URL, data=payload, content_type="application/json", headers={"Stripe-Signature": header})
