"""POST /billing/webhooks/stripe/: verify, store, queue, answer 200 in milliseconds.

Nothing is stored for a request that is not a correctly signed, recent Stripe event, so an
attacker cannot grow our tables; such requests are counted and logged instead.
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import stripe_gateway
from billing.errors import WebhookInvalid
from billing.events import webhook_event_ingest

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 512 * 1024  # Stripe's events are a few kB; anything near this is not one
SIGNATURE_TOLERANCE_SECONDS = 300
REJECTED_COUNTER = "billing:webhooks:rejected"


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _reject(request, "bad Content-Length")
    if length > MAX_BODY_BYTES:
        return _reject(request, "body too large", status=413)
    try:
        event = stripe_gateway.webhook_payload_verify(
            payload=request.body,
            signature_header=request.headers.get("Stripe-Signature"),
            secret=settings.STRIPE_WEBHOOK_SECRET,
            tolerance=SIGNATURE_TOLERANCE_SECONDS,
        )
    except WebhookInvalid as invalid:
        return _reject(request, str(invalid))
    with transaction.atomic():
        webhook_event_ingest(event=event)
    return HttpResponse(status=200)


def _reject(request, reason, status=400):
    cache.add(REJECTED_COUNTER, 0, timeout=None)
    rejected = cache.incr(REJECTED_COUNTER)
    logger.warning(
        "Rejected a Stripe webhook from %s: %s (%s so far)", request.META.get("REMOTE_ADDR"), reason, rejected
    )
    return HttpResponseBadRequest("Invalid webhook.") if status == 400 else HttpResponse(status=status)
