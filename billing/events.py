"""Stripe events: stored once, applied once, in any order.

`webhook_event_ingest` stores an event by its Stripe id (a duplicate is a no-op) and queues it;
`event_process` claims it, runs the one handler for its type and records the outcome. Handlers
are idempotent (every effect is keyed by a Stripe id or guarded by a status that never moves
backwards) and order-tolerant: where order matters they re-read the object from Stripe. An event
about an object we do not know yet waits and is retried with backoff, then becomes an orphan.
"""

import logging
import time
import traceback
from datetime import UTC, datetime, timedelta

from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from billing import background, cards, payments, refunds, stripe_gateway, subscriptions
from billing.audit import audit_record, audit_record_bulk
from billing.disputes.holds import dispute_record
from billing.errors import StripeObjectNotFound
from billing.fraud.rules import fraud_flag_raise
from billing.models import Account, Payment, PaymentMethod, Refund, Subscription, WebhookEvent
from billing.versions import console_version_renew

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10  # 30 s doubling to an hour between attempts: about three hours of retrying
# A claim older than this belongs to a worker that died: the event may be taken over.
CLAIM_TIMEOUT = timedelta(minutes=5)
PROCESSED = WebhookEvent.Status.PROCESSED
IGNORED = WebhookEvent.Status.IGNORED
FINISHED = WebhookEvent.FINISHED

HANDLERS = {}


class ObjectNotYetKnown(Exception):
    """The event is about an object of ours we have not recorded yet: try again later."""


def handles(*event_types):
    def register(handler):
        for event_type in event_types:
            HANDLERS[event_type] = handler
        return handler

    return register


def retry_delay(attempts):
    """30 s, 1 min, 2 min, 4 min ... capped at an hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def webhook_event_ingest(*, event, source=WebhookEvent.Source.WEBHOOK):
    """Store a verified Stripe event once and queue its processing. Returns (event, created).

    One query for a new event, in autocommit or inside the caller's transaction: the unique Stripe
    id decides which of two deliveries stores (and queues) it, not a look-up first."""
    created_at = event.get("created")
    stored = WebhookEvent(
        stripe_event_id=event["id"],
        type=event["type"][:100],
        livemode=bool(event.get("livemode")),
        api_version=str(event.get("api_version") or "")[:40],
        payload=event,
        payment_intent_id=payment_intent_of(event),
        stripe_created_at=datetime.fromtimestamp(created_at, tz=UTC) if isinstance(created_at, int) else None,
        source=source,
    )
    if not _insert_unless_known(stored):
        return WebhookEvent.objects.get(stripe_event_id=event["id"]), False
    background.process_event.on_commit(stored.pk)
    return stored, True


def _insert_unless_known(stored):
    """INSERT the new event unless one with its Stripe id exists; True when it was inserted (and
    `stored` now has its pk). ON CONFLICT on that one column, so that any other constraint still
    raises; PostgreSQL and SQLite (3.35+) both take this form. Django's bulk_create(ignore_conflicts)
    would not tell whether the row was new, and create() would need a savepoint for the duplicate's
    IntegrityError inside a transaction."""
    alias = router.db_for_write(WebhookEvent)
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = WebhookEvent._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(stored, add=True), connection) for field in fields]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({quote(meta.get_field('stripe_event_id').column)}) DO NOTHING "
        f"RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    stored.pk = row[0]
    stored._state.adding, stored._state.db = False, alias
    return True


def payment_intent_of(event):
    """The id of the PaymentIntent an event concerns, or "" (customers, cards, setup intents)."""
    stripe_object = (event.get("data") or {}).get("object") or {}
    if stripe_object.get("object") == "payment_intent":
        found = stripe_object.get("id")
    else:
        found = stripe_object.get("payment_intent")
    return found[:255] if isinstance(found, str) else ""


def event_process(*, event_id):
    """Apply one stored event, unless it is finished or another worker holds it. Returns the event."""
    event = _claim(event_id)
    if event is None:
        return WebhookEvent.objects.get(pk=event_id)
    started = time.monotonic()
    handler = HANDLERS.get(event.type)
    try:
        outcome = IGNORED if handler is None else handler(event.payload["data"]["object"], event.type) or PROCESSED
    except ObjectNotYetKnown as waiting:
        _finish(event, started, status=_waiting_status(event), error=str(waiting))
    except Exception:
        logger.exception("Stripe event %s (%s) failed", event.stripe_event_id, event.type)
        _finish(event, started, status=WebhookEvent.Status.FAILED, error=traceback.format_exc(limit=5)[-4000:])
    else:
        _finish(event, started, status=outcome, error="")
    return event


def events_retry_by_staff(*, actor, event=None, ip_address=None):
    """The console's "retry" (one event) and "retry all failed" (no event), audited."""
    with transaction.atomic():
        if event is not None:
            queued = events_retry(event_ids=[event.pk])
            audit_record(
                actor=actor,
                action="webhook_event.retry",
                target=event,
                before={"status": event.status},
                ip_address=ip_address,
            )
        else:
            queued = events_retry()
            audit_record_bulk(
                actor=actor,
                action="webhook_event.retry_all",
                target_type="webhookevent",
                label=f"{queued} failed, waiting or orphan events",
                after={"queued": queued},
                ip_address=ip_address,
            )
    return queued


def events_retry(*, event_ids=None):
    """Queue failed, waiting or orphan events (all, or those given) for another attempt now.
    Returns how many were queued."""
    retryable = WebhookEvent.objects.filter(status__in=WebhookEvent.RETRYABLE)
    if event_ids is not None:
        retryable = retryable.filter(pk__in=event_ids)
    ids = list(retryable.values_list("pk", flat=True))
    # The same filter again: an event a worker took meanwhile is left to that worker.
    retryable.filter(pk__in=ids).update(status=WebhookEvent.Status.PENDING, next_attempt_at=None)
    console_version_renew()  # the overview counts failed events; a bulk update sends no signal
    for event_id in ids:
        background.process_event.on_commit(event_id)
    return len(ids)


def events_due():
    """Events whose next attempt is due, pending ones whose queue message may have been lost, and
    ones whose worker died mid-way."""
    now = timezone.now()
    retry_due = Q(status__in=[WebhookEvent.Status.FAILED, WebhookEvent.Status.WAITING], next_attempt_at__lte=now)
    stranded = Q(status=WebhookEvent.Status.PENDING, received_at__lte=now - timedelta(minutes=2))
    abandoned = Q(status=WebhookEvent.Status.PROCESSING, claimed_at__lte=now - CLAIM_TIMEOUT)
    return list(
        WebhookEvent.objects.filter(retry_due | stranded | abandoned).order_by("pk").values_list("pk", flat=True)
    )


def events_process_due():
    """One sweep over the events due (see `events_due`); an event that fails is logged and left to
    the next sweep. Returns how many were processed."""
    due = events_due()
    for event_id in due:
        try:
            event_process(event_id=event_id)
        except Exception:
            logger.exception("Could not process Stripe event %s; the next sweep tries again.", event_id)
    return len(due)


def events_fetch_missed(*, days=3):
    """Ingest any recent Stripe event whose webhook never reached us. Returns how many were new."""
    since = int((timezone.now() - timedelta(days=days)).timestamp())
    new = 0
    for event in stripe_gateway.events_since(created_after=since):
        with transaction.atomic():
            _, created = webhook_event_ingest(event=event, source=WebhookEvent.Source.POLL)
        new += created
    return new


def _claim(event_id):
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        now = timezone.now()
        if event.status in FINISHED or event.status == WebhookEvent.Status.ORPHAN:
            return None
        if event.status == WebhookEvent.Status.PROCESSING and event.claimed_at > now - CLAIM_TIMEOUT:
            return None  # another worker has it
        if event.next_attempt_at and event.next_attempt_at > now:
            return None  # not due yet: a scheduled retry and the sweep must not both spend attempts
        event.status = WebhookEvent.Status.PROCESSING
        event.attempts += 1
        event.claimed_at = timezone.now()
        event.save(update_fields=["status", "attempts", "claimed_at"])
    return event


def _waiting_status(event):
    return WebhookEvent.Status.ORPHAN if event.attempts >= MAX_ATTEMPTS else WebhookEvent.Status.WAITING


def _finish(event, started, *, status, error):
    event.status = status
    event.last_error = error
    event.processing_ms = int((time.monotonic() - started) * 1000)
    retrying = status in (WebhookEvent.Status.FAILED, WebhookEvent.Status.WAITING) and event.attempts < MAX_ATTEMPTS
    event.next_attempt_at = timezone.now() + retry_delay(event.attempts) if retrying else None
    event.processed_at = timezone.now() if status in FINISHED else None
    event.save(update_fields=["status", "last_error", "processing_ms", "next_attempt_at", "processed_at"])


def _payment_for_intent(payment_intent_id):
    """Our payment for a PaymentIntent, once we know Stripe charged it: a success, or one left for
    review (or resolved) with what Stripe charged, whose refunds and disputes are money too. Money
    events (refunds, disputes) about a payment we have not seen charged yet wait for it, so its hours
    exist before anything is taken back."""
    payment = Payment.objects.filter(stripe_payment_intent_id=payment_intent_id).first() if payment_intent_id else None
    if payment is None:
        raise ObjectNotYetKnown(f"No payment for PaymentIntent {payment_intent_id}.")
    if not payment.charged:
        payment = payments.payment_refresh(payment=payment)
    if not payment.charged:
        raise ObjectNotYetKnown(f"Payment {payment.pk} for {payment_intent_id} is not settled yet.")
    return payment


def _account_for_customer(customer_id):
    return Account.objects.filter(stripe_customer_id=customer_id).first() if customer_id else None


@handles(
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.requires_action",
    "payment_intent.processing",
)
def on_payment_intent(intent, event_type):
    ours = "payment_id" in (intent.get("metadata") or {})
    if not ours and not Payment.objects.filter(stripe_payment_intent_id=intent.get("id")).exists():
        return IGNORED  # not one of ours (a Dashboard charge, an invoice we have not seen yet)
    # The event may be old news: settle on the intent as Stripe has it now.
    current = stripe_gateway.payment_intent_retrieve(intent["id"])
    try:
        payments.payment_intent_settle(intent=current)
    except payments.UnknownPaymentIntent as unknown:
        raise ObjectNotYetKnown(str(unknown)) from unknown
    return PROCESSED


@handles("setup_intent.succeeded")
def on_setup_intent_succeeded(setup_intent, event_type):
    account = _account_for_customer(setup_intent.get("customer"))
    if account is None:
        return IGNORED
    if not PaymentMethod.objects.filter(stripe_payment_method_id=setup_intent.get("payment_method")).exists():
        # The browser confirmed the card but never told us (closed tab, lost request): save it now.
        cards.card_save(account=account, setup_intent_id=setup_intent["id"])
    return PROCESSED


@handles("setup_intent.setup_failed")
def on_setup_intent_failed(setup_intent, event_type):
    return PROCESSED  # nothing was saved; the student saw the reason in the card form


@handles("payment_method.attached", "payment_method.detached", "payment_method.updated")
def on_payment_method(payment_method, event_type):
    known = PaymentMethod.objects.filter(stripe_payment_method_id=payment_method["id"]).select_related("account")
    card = known.first()
    account = card.account if card else _account_for_customer(payment_method.get("customer"))
    if account is None:
        return IGNORED
    cards.card_sync(account=account, payment_method_id=payment_method["id"])
    return PROCESSED


@handles("customer.deleted")
def on_customer_deleted(customer, event_type):
    account = _account_for_customer(customer["id"])
    if account is None:
        return IGNORED
    cards.customer_forget(account=account)
    return PROCESSED


@handles("charge.refunded")
def on_charge_refunded(charge, event_type):
    payment = _payment_for_intent(charge.get("payment_intent"))
    listed = charge.get("refunds") or {}
    # Newer API versions no longer list the refunds on the charge, and a long list is cut short:
    # then ask Stripe for all of them.
    complete = isinstance(listed.get("data"), list) and not listed.get("has_more")
    for refund in listed["data"] if complete else stripe_gateway.refunds_for(charge["payment_intent"]):
        _record_refund(payment, refund)
    return PROCESSED


@handles("refund.created", "refund.updated", "charge.refund.updated")
def on_refund(refund, event_type):
    _record_refund(_payment_for_intent(refund.get("payment_intent")), refund)
    return PROCESSED


def _record_refund(payment, refund):
    refunds.refund_record(
        payment=payment,
        stripe_refund_id=refund["id"],
        amount_cents=refund["amount"],
        currency=refund["currency"],
        status=refund.get("status") or Refund.Status.SUCCEEDED,
        # A console refund: its row may still await the Stripe id (this webhook came first).
        portal_refund_id=(refund.get("metadata") or {}).get("portal_refund_id"),
    )


@handles(
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
def on_dispute(dispute, event_type):
    payment = _payment_for_intent(dispute.get("payment_intent"))
    dispute_record(payment=payment, dispute_object=dispute, event_type=event_type)
    return PROCESSED


@handles("radar.early_fraud_warning.created", "radar.early_fraud_warning.updated")
def on_early_fraud_warning(warning, event_type):
    payment = _payment_for_intent(warning.get("payment_intent"))
    fraud_flag_raise(payment=payment, warning_object=warning)
    return PROCESSED


@handles(
    "invoice.paid",
    "invoice.payment_succeeded",  # what API versions before invoice.paid send, and localstripe
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.finalized",
    "invoice.updated",
    "invoice.voided",
    "invoice.marked_uncollectible",
)
def on_invoice(invoice, event_type):
    if not stripe_gateway.invoice_subscription_id(invoice):
        return IGNORED  # a one-off invoice from the Dashboard: not the portal's
    snapshot = stripe_gateway.invoice_read(invoice)
    # Old news or not, apply the subscription and the invoice as Stripe has them now: first the
    # subscription's status, then the invoice (which knows better about the renewal it is).
    known = Subscription.objects.filter(stripe_subscription_id=snapshot.subscription_id).first()
    if known is not None:
        _current(lambda: subscriptions.subscription_refresh(subscription=known), known)
    current = _current(lambda: stripe_gateway.invoice_retrieve(snapshot.id), snapshot)
    try:
        payment = subscriptions.subscription_invoice_settle(invoice=current)
    except subscriptions.SubscriptionNotYetKnown as unknown:
        raise ObjectNotYetKnown(str(unknown)) from unknown
    return IGNORED if payment is None else PROCESSED


@handles("invoice.upcoming")
def on_invoice_upcoming(invoice, event_type):
    # The renewal reminder comes from our own scan (alerts), three days before each period ends,
    # whatever Stripe's reminder setting: this event adds nothing to it.
    return IGNORED


@handles(
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
)
def on_subscription(subscription, event_type):
    snapshot = stripe_gateway.subscription_read(subscription)
    remote = _current(lambda: stripe_gateway.subscription_retrieve(snapshot.id), snapshot)
    return PROCESSED if subscriptions.subscription_sync(remote=remote) else IGNORED


def _current(read, snapshot):
    """Stripe's current copy of an object (`read()`), or the event's own snapshot when Stripe has
    none: the event is signed by Stripe, and what we apply from it never moves backwards (a paid
    invoice stays paid, an ended subscription ended). Only the stand-in, which has no renewals of
    its own, lacks objects its own events name."""
    try:
        return read()
    except StripeObjectNotFound:
        logger.warning("Stripe has no %s now; applying the event's copy.", getattr(snapshot, "id", snapshot))
        return snapshot
