"""Sign and post a sample Stripe event to the local webhook endpoint, for what the stand-in never
emits: refunds, disputes and early fraud warnings about a payment; and a subscription's renewal,
failed renewal and cancellation (localstripe has no clock, so its subscriptions never renew)."""

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing import samples, stripe_gateway
from billing.errors import BillingError
from billing.models import Payment, Subscription

KINDS = ["refund", "partial-refund", "dispute-won", "dispute-lost", "fraud-warning"]
SUBSCRIPTION_KINDS = ["subscription-renewal", "subscription-payment-failed", "subscription-canceled"]


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


def subscription_events(kind, subscription):
    """The (type, object) pairs of a subscription's story: the next period paid (Stripe sends both
    names of the event), its charge declined, or the subscription ended."""
    if kind == "subscription-canceled":
        return [("customer.subscription.deleted", samples.subscription(subscription, status="canceled"))]
    period = samples.next_period(subscription)
    if kind == "subscription-renewal":
        paid = samples.invoice(subscription, period=period)
        return [("invoice.paid", paid), ("invoice.payment_succeeded", paid)]
    return [("invoice.payment_failed", samples.invoice(subscription, period=period, status="open"))]


class Command(BaseCommand):
    help = "Post signed sample Stripe events about a payment to the webhook endpoint (demo and manual tests)."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=KINDS + SUBSCRIPTION_KINDS)
        parser.add_argument("--payment", type=int, help="Payment id (default: the latest succeeded payment)")
        parser.add_argument("--subscription", type=int, help="Subscription id (default: the latest live one)")
        parser.add_argument("--url", default="http://127.0.0.1:8000/billing/webhooks/stripe/")

    def handle(self, *args, kind, payment, subscription, url, **options):
        if kind in SUBSCRIPTION_KINDS:
            chosen = self._subscription(subscription)
            if kind == "subscription-canceled":
                self._cancel_at_stripe(chosen)
            story = subscription_events(kind, chosen)
        else:
            chosen = self._payment(payment)
            story = sample_events(kind, chosen)
        for event_type, data_object in story:
            payload = samples.body(samples.event(event_type, data_object))
            header = samples.signature_header(payload, settings.STRIPE_WEBHOOK_SECRET)
            response = requests.post(
                url, data=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"}, timeout=10
            )
            self.stdout.write(f"{event_type} about {chosen}: HTTP {response.status_code}")

    def _payment(self, payment_id):
        payments = Payment.objects.filter(status=Payment.Status.SUCCEEDED)
        chosen = payments.filter(pk=payment_id).first() if payment_id else payments.order_by("-settled_at").first()
        if chosen is None:
            raise CommandError("No succeeded payment to send events about: renew or buy something first.")
        return chosen

    def _subscription(self, subscription_id):
        live = Subscription.objects.filter(status__in=Subscription.LIVE, stripe_subscription_id__isnull=False)
        chosen = live.filter(pk=subscription_id).first() if subscription_id else live.order_by("-created_at").first()
        if chosen is None or chosen.current_period_end is None:
            raise CommandError("No live subscription to send events about: subscribe to a monthly plan first.")
        return chosen

    def _cancel_at_stripe(self, subscription):
        """A subscription the stand-in knows is cancelled there too, so that re-reading it agrees."""
        try:
            stripe_gateway.subscription_cancel(subscription.stripe_subscription_id)
        except BillingError:
            self.stdout.write("The stand-in does not know this subscription; the event alone ends it.")
