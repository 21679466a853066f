"""What billing stops keeping after a while: the bodies of Stripe events processed long ago.

An event's body is Stripe's copy of a customer, card, charge or invoice, with the names, emails
and addresses in it. Once the event is applied, what we keep of it is its row: the Stripe id, type,
PaymentIntent, status, attempts, error and times. Failed, waiting and orphan events keep their body,
since they still have to be applied (portal.retention runs this with its periods)."""

from billing.models import WebhookEvent

# What an emptied body is: no event Stripe sends is an empty object.
EMPTY_BODY = {}


def webhook_event_bodies_empty(*, processed_before):
    """Empty the body of every event processed (or ignored as not ours) before `processed_before`,
    in one UPDATE; one already empty is left alone, so a second run changes nothing. Returns how
    many were emptied."""
    finished = WebhookEvent.objects.filter(status__in=WebhookEvent.FINISHED, processed_at__lt=processed_before)
    return finished.exclude(payload=EMPTY_BODY).update(payload=EMPTY_BODY)
