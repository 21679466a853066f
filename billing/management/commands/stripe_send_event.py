"""Sign and post a sample Stripe event to the local webhook endpoint, for the event types the
stand-in never emits (refunds, disputes, early fraud warnings), so the demo can show them."""

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing import samples
from billing.models import Payment

KINDS = ["refund", "partial-refund", "dispute-won", "dispute-lost", "fraud-warning"]


def sample_events(kind, payment):
    """The (type, object) pairs that tell the story `kind` about `payment`, in Stripe's order."""
    if kind == "refund":
        return [("charge.refunded", samples.charge_refunded(payment, [samples.refund(payment)]))]
    if kind == "partial-refund":
        return [("refund.created", samples.refund(payment, amount_cents=payment.amount_cents // 2))]
    if kind == "fraud-warning":
        return [("radar.early_fraud_warning.created", samples.early_fraud_warning(payment))]
    dispute_id = f"dp_demo_{payment.pk}_{kind}"
    outcome = "charge.dispute.funds_reinstated" if kind == "dispute-won" else "charge.dispute.closed"
    closed = samples.dispute(payment, status=kind.removeprefix("dispute-"), withdrawn=True, dispute_id=dispute_id)
    return [
        ("charge.dispute.created", samples.dispute(payment, dispute_id=dispute_id)),
        ("charge.dispute.funds_withdrawn", samples.dispute(payment, withdrawn=True, dispute_id=dispute_id)),
        (outcome, closed),
    ]


class Command(BaseCommand):
    help = "Post signed sample Stripe events about a payment to the webhook endpoint (demo and manual tests)."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("--payment", type=int, help="Payment id (default: the latest succeeded payment)")
        parser.add_argument("--url", default="http://127.0.0.1:8000/billing/webhooks/stripe/")

    def handle(self, *args, kind, payment, url, **options):
        payments = Payment.objects.filter(status=Payment.Status.SUCCEEDED)
        chosen = payments.filter(pk=payment).first() if payment else payments.order_by("-settled_at").first()
        if chosen is None:
            raise CommandError("No succeeded payment to send events about: renew or buy something first.")
        for event_type, data_object in sample_events(kind, chosen):
            payload = samples.body(samples.event(event_type, data_object))
            header = samples.signature_header(payload, settings.STRIPE_WEBHOOK_SECRET)
            response = requests.post(
                url, data=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"}, timeout=10
            )
            self.stdout.write(f"{event_type} about payment {chosen.pk}: HTTP {response.status_code}")
