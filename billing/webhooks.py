"""POST /billing/webhooks/stripe/: verify, store, queue, answer 200 in milliseconds.

Nothing is stored for a request that is not a correctly signed, recent Stripe event, so an
attacker cannot grow our tables; such requests are counted and logged instead, and once an address's
failures pass PORTAL_RATE_LIMITS["webhook_bad_signature"] its failures are answered 429 (and no longer
logged one by one). A correctly signed event is always taken, from any address: a forger sharing
Stripe's address, or a proxy's, can never make us refuse Stripe's deliveries.
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import stripe_gateway
from billing.errors import WebhookInvalid
from billing.events import webhook_event_ingest
from billing.ratelimits import seconds_over_limit

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 512 * 1024  # Stripe's events are a few kB; anything near this is not one
SIGNATURE_TOLERANCE_SECONDS = 300
REJECTED_COUNTER = "billing:webhooks:rejected"
BAD_SIGNATURES = "webhook_bad_signature"


@csrf_exempt
@require_POST
def stripe_webhook(request):
    payload = _body_read(request, limit=MAX_BODY_BYTES + 1)
    if len(payload) > MAX_BODY_BYTES:
        return _reject(request, "body too large", status=413)
    try:
        event = stripe_gateway.webhook_payload_verify(
            payload=payload,
            signature_header=request.headers.get("Stripe-Signature"),
            secret=settings.STRIPE_WEBHOOK_SECRET,
            tolerance=SIGNATURE_TOLERANCE_SECONDS,
        )
    except WebhookInvalid as invalid:
        if wait := seconds_over_limit(request, BAD_SIGNATURES):
            return HttpResponse("Too many invalid webhooks.", status=429, headers={"Retry-After": str(wait)})
        return _reject(request, str(invalid))
    # No transaction around it: the ingest is one INSERT, committed at once, then the enqueue.
    webhook_event_ingest(event=event)
    return HttpResponse(status=200)


def _body_read(request, *, limit):
    """At most `limit` bytes of the body, whatever Content-Length says or does not say. A chunked
    request has no Content-Length, so Django's stream holds nothing; gunicorn marks such an input as
    ending by itself (wsgi.input_terminated), and it is read directly, to the same limit."""
    if "CONTENT_LENGTH" not in request.META and request.META.get("wsgi.input_terminated"):
        return request.META["wsgi.input"].read(limit)
    return request.read(limit)


def _reject(request, reason, status=400):
    try:
        cache.add(REJECTED_COUNTER, 0, timeout=None)
        rejected = cache.incr(REJECTED_COUNTER)
    except Exception:  # the cache is down: the refusal stands, uncounted
        rejected = "uncounted"
    logger.warning(
        "Rejected a Stripe webhook from %s (forwarded for %s): %s (%s so far)",
        request.META.get("REMOTE_ADDR"),
        request.headers.get("X-Forwarded-For", "-"),
        reason,
        rejected,
    )
    return HttpResponseBadRequest("Invalid webhook.") if status == 400 else HttpResponse(status=status)
