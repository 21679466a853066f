"""The only module that talks to Stripe, and the only one that imports `stripe`.

Small functions over StripeClient that return plain data and raise billing.errors. Every call that
creates something sends an Idempotency-Key (real Stripe honours it; localstripe, the offline
stand-in, does not, so our own database is what prevents double charges).
"""

import io
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

import stripe
from django.conf import settings
from django.utils.translation import gettext_noop

from billing.errors import (
    CardNotFound,
    CustomerNotFound,
    PaymentDeclined,
    ProviderAnswerUnreadable,
    ProviderRequestInvalid,
    ProviderSearchIncomplete,
    ProviderUnavailable,
    StripeObjectNotFound,
    WebhookInvalid,
)

logger = logging.getLogger(__name__)

EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,200}")
# Far more refunds than one payment ever has; it only keeps a listing from paging on without end.
REFUND_LISTING_LIMIT = 1000

# Decline codes in words a student understands. Lost/stolen/fraud codes deliberately read as a
# plain decline: the card holder learns the details from their bank, not from us. Stored in English
# with the payment (staff read them so) and translated where a student reads them, hence only marked.
DECLINE_MESSAGES = {
    "insufficient_funds": gettext_noop("Your card has insufficient funds."),
    "expired_card": gettext_noop("Your card has expired."),
    "incorrect_cvc": gettext_noop("The card's security code is incorrect."),
    "incorrect_number": gettext_noop("The card number is incorrect."),
    "processing_error": gettext_noop("The card could not be processed. Please try again in a moment."),
    "card_velocity_exceeded": gettext_noop("Your card has reached its spending limit."),
    "payment_intent_authentication_failure": gettext_noop("The card's authentication (3-D Secure) failed."),
}
GENERIC_DECLINE = gettext_noop("Your card was declined by your bank.")


class StripeStatus(StrEnum):
    """Statuses of Stripe's PaymentIntents, SetupIntents and refunds that our code acts on."""

    SUCCEEDED = "succeeded"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    CANCELED = "canceled"


@dataclass(frozen=True)
class Card:
    id: str
    customer_id: str | None
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class SetupIntent:
    id: str
    status: str
    client_secret: str
    customer_id: str | None
    payment_method_id: str | None


@dataclass(frozen=True)
class Refund:
    id: str
    status: str
    amount_cents: int
    currency: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    status: str
    amount_cents: int
    currency: str
    client_secret: str
    payment_method_id: str | None
    metadata: dict = field(default_factory=dict)
    failure_code: str = ""
    failure_message: str = ""


@dataclass(frozen=True)
class StripeSubscription:
    """A Subscription as we read it, from either of Stripe's shapes: API versions before 2025-03-31
    keep the current period on the subscription, later ones on its item."""

    id: str
    status: str
    customer_id: str
    price_id: str
    item_id: str
    cancel_at_period_end: bool
    current_period_start: int | None
    current_period_end: int | None
    canceled_at: int | None
    ended_at: int | None
    latest_invoice_id: str | None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InvoiceLine:
    price_id: str
    amount_cents: int
    period_start: int
    period_end: int
    proration: bool


@dataclass(frozen=True)
class Invoice:
    """An Invoice as we read it. Before API version 2025-03-31 an invoice names its subscription and
    PaymentIntent itself; from then on under `parent.subscription_details` and `payments`."""

    id: str
    status: str
    customer_id: str
    subscription_id: str | None
    amount_due_cents: int
    amount_paid_cents: int
    currency: str
    payment_intent_id: str | None
    billing_reason: str
    attempt_count: int
    next_payment_attempt: int | None
    lines: tuple = ()
    subscription_metadata: dict = field(default_factory=dict)

    @property
    def paid(self):
        return self.status == "paid"

    @property
    def proration(self):
        return self.billing_reason == "subscription_update" or any(line.proration for line in self.lines)


def decline_message(code):
    return DECLINE_MESSAGES.get(code, GENERIC_DECLINE)


def customer_create(*, email, name, account_id):
    customer = _call(
        lambda client: client.v1.customers.create(
            params={"email": email, "name": name, "metadata": {"account_id": str(account_id)}},
            # Unique per attempt: a key replays its first answer for a day, which would hand back a
            # customer deleted since.
            options={"idempotency_key": f"customer-{account_id}-{secrets.token_hex(8)}"},
        )
    )
    return customer.id


def customer_exists(customer_id):
    try:
        customer = _call(lambda client: client.v1.customers.retrieve(customer_id), not_found=CustomerNotFound)
    except CustomerNotFound:
        return False
    return not getattr(customer, "deleted", False)


def customer_delete(customer_id):
    """Delete a customer at Stripe, and with it their saved cards: what erasing a student asks of
    Stripe. A customer Stripe no longer has (deleted before, or by an erasure that stopped half-way)
    counts as deleted, so an erasure can always be tried again."""
    try:
        _call(lambda client: client.v1.customers.delete(customer_id), not_found=CustomerNotFound)
    except CustomerNotFound:
        logger.info("Stripe customer %s was already deleted.", customer_id)


def customer_set_default_card(*, customer_id, payment_method_id):
    _call(
        lambda client: client.v1.customers.update(
            customer_id, params={"invoice_settings": {"default_payment_method": payment_method_id or ""}}
        )
    )


def setup_intent_create(*, customer_id, idempotency_key):
    intent = _call(
        lambda client: client.v1.setup_intents.create(
            params={"customer": customer_id, "payment_method_types": ["card"], "usage": "off_session"},
            options={"idempotency_key": idempotency_key},
        )
    )
    return _setup_intent(intent)


def setup_intent_retrieve(setup_intent_id):
    return _setup_intent(_call(lambda client: client.v1.setup_intents.retrieve(setup_intent_id)))


def card_retrieve(payment_method_id):
    return _card(_call(lambda client: client.v1.payment_methods.retrieve(payment_method_id), not_found=CardNotFound))


def card_attach(*, payment_method_id, customer_id):
    return _card(
        _call(
            lambda client: client.v1.payment_methods.attach(payment_method_id, params={"customer": customer_id}),
            not_found=CardNotFound,
        )
    )


def card_detach(payment_method_id):
    _call(lambda client: client.v1.payment_methods.detach(payment_method_id), not_found=CardNotFound)


def payment_intent_charge_off_session(
    *, amount_cents, currency, customer_id, payment_method_id, metadata, idempotency_key
):
    """Create and confirm a PaymentIntent on a saved card without the student present.

    A card that needs 3-D Secure comes back as status "requires_action" in both of Stripe's shapes:
    real Stripe answers 402 authentication_required (the intent back in requires_payment_method),
    localstripe answers 200 with status requires_action.
    """
    params = {
        "amount": amount_cents,
        "currency": currency.lower(),
        "customer": customer_id,
        "payment_method": payment_method_id,
        "off_session": True,
        "confirm": True,
        "metadata": {key: str(value) for key, value in metadata.items()},
    }
    try:
        intent = _call(
            lambda client: client.v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key}
            ),
            charging=True,
            not_found=CardNotFound,
        )
    except _AuthenticationRequired as needed:
        return needed.intent
    return _payment_intent(intent)


def payment_intent_retrieve(payment_intent_id):
    return _payment_intent(
        _call(lambda client: client.v1.payment_intents.retrieve(payment_intent_id), not_found=StripeObjectNotFound)
    )


def payment_intent_cancel(payment_intent_id):
    return _payment_intent(_call(lambda client: client.v1.payment_intents.cancel(payment_intent_id)))


def payment_intents_created(*, since, until):
    """Every PaymentIntent of the Stripe account created between `since` and `until` (datetimes),
    newest first, a page at a time: a list of up to 100 PaymentIntents per page, so that the caller
    stops reading as soon as it has what it wanted. An intent that cannot be read is left out (and
    logged): whoever wanted it asks for it alone."""
    params = {"created": {"gte": int(since.timestamp()), "lte": int(until.timestamp())}, "limit": 100}
    page = _call(lambda client: client.v1.payment_intents.list(params=params))
    while True:
        intents = []
        for listed in page.data:
            try:
                intents.append(_payment_intent_read(listed))
            except (AttributeError, KeyError, TypeError, ValueError) as unreadable:
                logger.warning(
                    "Stripe listed a PaymentIntent we cannot read (%s): %r", getattr(listed, "id", "?"), unreadable
                )
        yield intents
        if not page.has_more:
            return
        page = _call(lambda client, page=page: page.next_page())


def payment_intent_find(*, customer_id, payment_id, created_at):
    """The PaymentIntent we created for our payment `payment_id` (made at `created_at`), when its id
    never reached us, or None when Stripe has none. Only the customer's intents created since then
    are listed, so this stays a page or two. At most STRIPE_PAYMENT_SEARCH_LIMIT intents are read:
    when that many did not hold it, ProviderSearchIncomplete (not finding it proves nothing)."""
    limit = settings.STRIPE_PAYMENT_SEARCH_LIMIT

    def first_match(params):
        wanted = str(payment_id)
        page = _call(lambda client: client.v1.payment_intents.list(params=params | {"limit": min(limit, 100)}))
        read = 0
        while True:
            found = next((intent for intent in page.data if _metadata(intent).get("payment_id") == wanted), None)
            read += len(page.data)
            if found is not None or not page.has_more:
                return found
            if read >= limit:
                raise ProviderSearchIncomplete(f"No PaymentIntent for payment {payment_id} among the {read} read.")
            page = _call(lambda client, page=page: page.next_page())

    since = int(created_at.timestamp()) - 60  # a minute of clock skew between us and Stripe
    try:
        intent = first_match({"customer": customer_id, "created": {"gte": since}})
    except ProviderRequestInvalid:
        # localstripe filters neither by customer nor by date: this lists every intent of the
        # Stripe account, which the limit keeps from paging through all of them.
        intent = first_match({})
    return _payment_intent(intent) if intent is not None else None


# Subscriptions: Products and Prices (or, where the Prices API is missing, as on localstripe, the
# legacy Plans API: a plan is a price at Stripe), Subscriptions and their Invoices.


def product_create(*, name, plan_id):
    product = _call(
        lambda client: client.v1.products.create(
            params={"name": name, "metadata": {"plan_id": str(plan_id)}},
            options={"idempotency_key": f"product-{plan_id}-{secrets.token_hex(8)}"},
        )
    )
    return product.id


def price_create(*, product_id, plan_id, amount_cents, currency, interval):
    """A recurring price of `amount_cents` per `interval` for a product. Prices are immutable at
    Stripe: another amount is another price."""
    metadata = {"plan_id": str(plan_id)}
    options = {"idempotency_key": f"price-{plan_id}-{secrets.token_hex(8)}"}
    if settings.STRIPE_PRICES_API:
        params = {
            "product": product_id,
            "unit_amount": amount_cents,
            "currency": currency.lower(),
            "recurring": {"interval": interval},
            "metadata": metadata,
        }
        return _call(lambda client: client.v1.prices.create(params=params, options=options)).id
    params = {
        "id": f"plan-{plan_id}-{amount_cents}-{currency.lower()}-{interval}-{secrets.token_hex(4)}",
        "product": product_id,
        "amount": amount_cents,
        "currency": currency.lower(),
        "interval": interval,
        "metadata": metadata,
    }
    return _call(lambda client: client.v1.plans.create(params=params, options=options)).id


def price_exists(price_id):
    prices = (lambda client: client.v1.prices) if settings.STRIPE_PRICES_API else (lambda client: client.v1.plans)
    try:
        price = _call(lambda client: prices(client).retrieve(price_id), not_found=StripeObjectNotFound)
    except StripeObjectNotFound:
        return False
    return bool(getattr(price, "active", True))


def _item(price_id, **extra):
    return {("price" if settings.STRIPE_PRICES_API else "plan"): price_id} | extra


def subscription_create(*, customer_id, price_id, metadata, idempotency_key):
    """Subscribe the customer to a price. It charges the customer's default card (invoice_settings),
    which the portal keeps equal to the student's default card. With allow_incomplete Stripe answers
    even when the first invoice is declined or needs 3-D Secure: the subscription is then incomplete."""
    params = {
        "customer": customer_id,
        "items": [_item(price_id)],
        "metadata": {key: str(value) for key, value in metadata.items()},
        "payment_behavior": "allow_incomplete",
    }
    return _subscription(
        _call(
            lambda client: client.v1.subscriptions.create(params=params, options={"idempotency_key": idempotency_key}),
            charging=True,
        )
    )


def subscription_retrieve(subscription_id):
    return _subscription(
        _call(lambda client: client.v1.subscriptions.retrieve(subscription_id), not_found=StripeObjectNotFound)
    )


def subscriptions_for(customer_id):
    """Every subscription of a customer, ended ones included (a customer has a handful)."""
    page = _call(lambda client: client.v1.subscriptions.list(params={"customer": customer_id, "status": "all"}))
    return [_subscription(item) for item in page.auto_paging_iter()]


def subscription_cancel(subscription_id):
    """End it now: no more invoices. Hours already granted are ours to keep or take."""
    return _subscription(
        _call(lambda client: client.v1.subscriptions.cancel(subscription_id), not_found=StripeObjectNotFound)
    )


def subscription_cancel_at_period_end(subscription_id, *, cancel):
    """Stop (or, with cancel=False, resume) the renewal at the end of the current period."""
    return _subscription(
        _call(
            lambda client: client.v1.subscriptions.update(
                subscription_id, params={"cancel_at_period_end": bool(cancel)}
            ),
            not_found=StripeObjectNotFound,
        )
    )


def subscription_price_change(*, subscription_id, item_id, price_id, prorate, idempotency_key):
    """Move a subscription to another price. With `prorate`, now: Stripe invoices the difference for
    the rest of the period at once, and keeps the old price unless that invoice is paid
    (pending_if_incomplete). Without, from the next period: nothing is invoiced now."""
    params = {"items": [_item(price_id, id=item_id)]}
    if prorate:
        params |= {"proration_behavior": "always_invoice", "payment_behavior": "pending_if_incomplete"}
    else:
        params |= {"proration_behavior": "none"}
    return _subscription(
        _call(
            lambda client: client.v1.subscriptions.update(
                subscription_id, params=params, options={"idempotency_key": idempotency_key}
            ),
            charging=prorate,
            not_found=StripeObjectNotFound,
        )
    )


def invoice_retrieve(invoice_id):
    invoice = _call(lambda client: client.v1.invoices.retrieve(invoice_id), not_found=StripeObjectNotFound)
    raw = invoice.to_dict()
    if "payment_intent" not in raw and "payments" not in raw:
        # API versions from 2025-03-31 list an invoice's payments only when asked to.
        raw = _call(lambda client: client.v1.invoices.retrieve(invoice_id, params={"expand": ["payments"]})).to_dict()
    return invoice_read(raw)


def invoice_pay(invoice_id):
    """Attempt an open invoice again with the customer's default card. A decline or a card that
    needs 3-D Secure raises PaymentDeclined (real Stripe) or comes back open (localstripe): read the
    invoice and its PaymentIntent afterwards either way."""
    return invoice_read(
        _call(
            lambda client: client.v1.invoices.pay(invoice_id), charging=True, not_found=StripeObjectNotFound
        ).to_dict()
    )


def invoices_for(*, customer_id, created_after, limit=100):
    """The customer's invoices created since `created_after` (a Unix time), newest first."""
    params = {"customer": customer_id, "created": {"gte": created_after}, "limit": min(limit, 100)}
    try:
        page = _call(lambda client: client.v1.invoices.list(params=params))
    except (ProviderRequestInvalid, ProviderUnavailable):
        # localstripe filters invoices by customer, not by date: it answers `created` with a 500.
        page = _call(lambda client: client.v1.invoices.list(params={"customer": customer_id, "limit": 100}))
    invoices = []
    for raw in page.auto_paging_iter():
        if raw.created < created_after:
            continue
        invoices.append(invoice_read(raw.to_dict()))
        if len(invoices) >= limit:
            break
    return invoices


def subscription_read(raw):
    """A subscription from a plain dict (Stripe's answer, or an event's object)."""
    try:
        item = raw["items"]["data"][0]
        return StripeSubscription(
            id=raw["id"],
            status=raw["status"],
            customer_id=_id_of(raw.get("customer")) or "",
            price_id=_price_of(item),
            item_id=item["id"],
            cancel_at_period_end=bool(raw.get("cancel_at_period_end")),
            current_period_start=raw.get("current_period_start") or item.get("current_period_start"),
            current_period_end=raw.get("current_period_end") or item.get("current_period_end"),
            canceled_at=raw.get("canceled_at"),
            ended_at=raw.get("ended_at"),
            latest_invoice_id=_id_of(raw.get("latest_invoice")),
            metadata=dict(raw.get("metadata") or {}),
        )
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as unreadable:
        logger.error("Stripe sent a subscription we cannot read: %r", unreadable)
        raise ProviderAnswerUnreadable("The payment provider's answer could not be read.") from unreadable


def invoice_subscription_id(raw):
    """The id of the subscription an invoice (a plain dict, in either API shape) bills, or None."""
    details = ((raw.get("parent") or {}).get("subscription_details")) or {}
    return _id_of(raw.get("subscription")) or _id_of(details.get("subscription"))


def invoice_read(raw):
    """An invoice from a plain dict (Stripe's answer, or an event's object), in either API shape."""
    try:
        details = ((raw.get("parent") or {}).get("subscription_details")) or raw.get("subscription_details") or {}
        return Invoice(
            id=raw["id"],
            status=raw.get("status") or "",
            customer_id=_id_of(raw.get("customer")) or "",
            subscription_id=invoice_subscription_id(raw),
            amount_due_cents=int(raw["amount_due"]),
            amount_paid_cents=int(raw.get("amount_paid") or 0),
            currency=raw["currency"].upper(),
            payment_intent_id=_invoice_payment_intent(raw),
            billing_reason=raw.get("billing_reason") or "",
            attempt_count=int(raw.get("attempt_count") or 0),
            next_payment_attempt=raw.get("next_payment_attempt"),
            lines=tuple(_invoice_line(line) for line in (raw.get("lines") or {}).get("data") or []),
            subscription_metadata=dict(details.get("metadata") or {}),
        )
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as unreadable:
        logger.error("Stripe sent an invoice we cannot read: %r", unreadable)
        raise ProviderAnswerUnreadable("The payment provider's answer could not be read.") from unreadable


def _invoice_payment_intent(raw):
    if raw.get("payment_intent"):
        return _id_of(raw["payment_intent"])
    listed = (raw.get("payments") or {}).get("data") or []
    payments = [entry.get("payment") or {} for entry in listed if isinstance(entry, dict)]
    intents = [_id_of(payment.get("payment_intent")) for payment in payments if payment.get("payment_intent")]
    if intents:
        return intents[0]  # Stripe lists an invoice's payments newest first
    charge = raw.get("charge")
    return _id_of(charge.get("payment_intent")) if isinstance(charge, dict) else None


def _invoice_line(line):
    subscription_item = (line.get("parent") or {}).get("subscription_item_details") or {}
    period = line["period"]
    return InvoiceLine(
        price_id=_price_of(line),
        amount_cents=int(line["amount"]),
        period_start=int(period["start"]),
        period_end=int(period["end"]),
        proration=bool(line.get("proration") or subscription_item.get("proration")),
    )


def _price_of(item):
    """The price id of a subscription item or invoice line: `price`, the legacy `plan`, or (invoice
    lines from 2025-03-31) `pricing.price_details.price`."""
    for key in ("price", "plan"):
        if item.get(key):
            return _id_of(item[key])
    return _id_of(((item.get("pricing") or {}).get("price_details") or {}).get("price")) or ""


def _id_of(value):
    """An expandable field's id, whether Stripe sent the id or the object."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _subscription(stripe_object):
    return subscription_read(stripe_object.to_dict())


class _AuthenticationRequired(Exception):
    def __init__(self, intent):
        self.intent = intent


def _client():
    options = {
        "max_network_retries": settings.STRIPE_MAX_NETWORK_RETRIES,
        "http_client": stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
    }
    if settings.STRIPE_API_BASE:
        options["base_addresses"] = {"api": settings.STRIPE_API_BASE, "files": settings.STRIPE_API_BASE}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, **options)


def _call(request, *, charging=False, not_found=None):
    """Run one Stripe request and translate Stripe's errors into ours.

    `charging` marks a request that may move money, so that an unanswered one is reported as
    possibly charged; `not_found` is the error to raise when Stripe answers 404.
    """
    try:
        return request(_client())
    except stripe.CardError as error:
        detail = error.error
        code = getattr(detail, "decline_code", None) or getattr(detail, "code", None) or error.code or ""
        intent = getattr(detail, "payment_intent", None)
        if code == "authentication_required" and intent is not None:
            raise _AuthenticationRequired(_payment_intent(intent)) from error
        raise PaymentDeclined(
            decline_message(code), code=code, payment_intent_id=intent.id if intent is not None else None
        ) from error
    except stripe.InvalidRequestError as error:
        # Real Stripe answers a missing object with 400 resource_missing, localstripe with 404.
        if not_found is not None and (error.http_status == 404 or error.code == "resource_missing"):
            raise not_found() from error
        logger.error("Stripe refused a request: %s", error)
        raise ProviderRequestInvalid("The payment provider refused the request.") from error
    except stripe.IdempotencyError as error:
        logger.error("Stripe refused a reused idempotency key: %s", error)
        raise ProviderRequestInvalid("The payment provider refused the request.") from error
    except stripe.APIConnectionError as error:
        # Sent but unanswered: Stripe may have charged the card.
        raise ProviderUnavailable(maybe_charged=charging) from error
    except (stripe.APIError, stripe.RateLimitError, stripe.AuthenticationError, stripe.PermissionError) as error:
        raise ProviderUnavailable(maybe_charged=charging and isinstance(error, stripe.APIError)) from error


def _card(payment_method):
    card = payment_method.card
    return Card(
        id=payment_method.id,
        customer_id=payment_method.customer,
        brand=card.brand,
        last4=card.last4,
        exp_month=int(card.exp_month),
        exp_year=int(card.exp_year),
    )


def _setup_intent(intent):
    return SetupIntent(
        id=intent.id,
        status=intent.status,
        client_secret=intent.client_secret,
        customer_id=intent.customer,
        payment_method_id=intent.payment_method,
    )


def _metadata(stripe_object):
    metadata = getattr(stripe_object, "metadata", None)
    return metadata.to_dict() if metadata else {}


def _payment_intent(intent):
    try:
        return _payment_intent_read(intent)
    except (AttributeError, KeyError, TypeError, ValueError) as unreadable:
        logger.error("Stripe sent a PaymentIntent we cannot read: %r", unreadable)
        raise ProviderAnswerUnreadable("The payment provider's answer could not be read.") from unreadable


def _payment_intent_read(intent):
    error = getattr(intent, "last_payment_error", None)
    code = (getattr(error, "decline_code", None) or getattr(error, "code", None) or "") if error else ""
    return PaymentIntent(
        id=intent.id,
        # Real Stripe's off-session answer to a card that needs 3-D Secure: back to
        # requires_payment_method with this code. To us that is waiting for the student.
        status=StripeStatus.REQUIRES_ACTION
        if code == "authentication_required" and intent.status == StripeStatus.REQUIRES_PAYMENT_METHOD
        else intent.status,
        amount_cents=int(intent.amount),
        currency=intent.currency.upper(),
        client_secret=intent.client_secret,
        payment_method_id=intent.payment_method if isinstance(intent.payment_method, str) else None,
        metadata=_metadata(intent),
        failure_code=code,
        failure_message=decline_message(code) if code else "",
    )


def webhook_payload_verify(*, payload, signature_header, secret, tolerance=300):
    """Check a webhook body's Stripe-Signature (HMAC-SHA256, within `tolerance` seconds) and return
    the event as plain data. Raises WebhookInvalid for a bad or stale signature or a malformed body."""
    if not secret:
        raise WebhookInvalid("No webhook secret is configured.")
    if not (signature_header or "").isascii():
        # stripe compares signatures with hmac.compare_digest, which raises TypeError on non-ASCII text.
        raise WebhookInvalid("The Stripe-Signature header is not ASCII.")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature_header or "", secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as error:
        raise WebhookInvalid(str(error)) from error
    try:
        event = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise WebhookInvalid("The body is not JSON.") from error
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or len(event["type"]) > 100:
        raise WebhookInvalid("The body is not a Stripe event.")
    if not isinstance(event.get("id"), str) or not EVENT_ID.fullmatch(event["id"]):
        raise WebhookInvalid("The event id is not a Stripe event id.")
    if not isinstance(event.get("created"), int) or not 0 < event["created"] < 2**32:
        raise WebhookInvalid("The event has no valid creation time.")
    if not isinstance(event.get("data"), dict) or not isinstance(event["data"].get("object"), dict):
        raise WebhookInvalid("The event has no object.")
    if "\\u0000" in payload.decode("utf-8"):
        raise WebhookInvalid("The event contains a NUL character.")  # PostgreSQL's jsonb cannot store it
    return event


def _no_constant(name):
    raise ValueError(f"{name} is not JSON.")


def events_since(*, created_after, limit=100):
    """Stripe's recent events (plain dicts), to find any whose webhook never reached us."""
    events = _call(lambda client: client.v1.events.list(params={"created": {"gte": created_after}, "limit": limit}))
    return [event.to_dict() for event in events.auto_paging_iter()]


def refunds_for(payment_intent_id, *, limit=REFUND_LISTING_LIMIT):
    """Every refund of a PaymentIntent, as plain dicts, newest first, paged through up to `limit` of
    them: a PaymentIntent with more raises ProviderSearchIncomplete (the ones read are not all)."""
    params = {"payment_intent": payment_intent_id, "limit": min(limit, 100)}
    page = _call(lambda client: client.v1.refunds.list(params=params))
    refunds = [refund.to_dict() for refund in page.data]
    while page.has_more:
        if len(refunds) >= limit:
            raise ProviderSearchIncomplete(f"PaymentIntent {payment_intent_id} has more than {limit} refunds.")
        page = _call(lambda client, page=page: page.next_page())
        refunds += [refund.to_dict() for refund in page.data]
    return refunds


def refund_create(*, payment_intent_id, amount_cents, metadata, idempotency_key):
    """Give `amount_cents` of a PaymentIntent back to the card. An unanswered request may have
    refunded (ProviderUnavailable with maybe_charged): send it again with the same key."""
    params = {
        "payment_intent": payment_intent_id,
        "amount": amount_cents,
        "metadata": {key: str(value) for key, value in metadata.items()},
    }
    refund = _call(
        lambda client: client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key}),
        charging=True,
    )
    return Refund(
        id=refund.id,
        status=refund.status or StripeStatus.SUCCEEDED,
        amount_cents=int(refund.amount),
        currency=refund.currency.upper(),
        metadata=_metadata(refund),
    )


# Disputes: evidence, submission and acceptance. Stripe takes evidence files by id, uploaded first
# through its Files API (its own "files" base address).

EVIDENCE_FILE_TYPES = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}


def dispute_evidence_submit(*, dispute_id, evidence, submit=True):
    """Send a dispute's evidence (Stripe's field names -> text or file id); with `submit`, Stripe
    takes it as final and reviews the dispute. Returns the dispute as a plain dict."""
    params = {"evidence": dict(evidence), "submit": bool(submit)}
    dispute = _call_with_stripes_reason(lambda client: client.v1.disputes.update(dispute_id, params=params))
    return dispute.to_dict()


def dispute_close(dispute_id):
    """Accept a dispute as lost (Stripe's "close"). Returns the dispute as a plain dict."""
    return _call_with_stripes_reason(lambda client: client.v1.disputes.close(dispute_id)).to_dict()


def evidence_file_upload(*, filename, content, content_type):
    """Upload one evidence document (PDF, JPEG or PNG) and return its Stripe file id.

    stripe-python labels every uploaded part application/octet-stream; Stripe tells the type from
    the bytes and the file name, so the name must carry the extension of `content_type`."""
    extension = EVIDENCE_FILE_TYPES.get(content_type)
    if extension is None:
        raise ProviderRequestInvalid(f"Stripe takes evidence as PDF, JPEG or PNG, not {content_type}.")
    if not filename.lower().endswith(extension):
        filename += extension
    upload = io.BytesIO(content)
    upload.name = filename  # the multipart part's filename
    uploaded = _call_with_stripes_reason(
        lambda client: client.v1.files.create(params={"file": upload, "purpose": "dispute_evidence"})
    )
    return uploaded.id


def _call_with_stripes_reason(request):
    """`_call`, keeping Stripe's own words when it refuses a request: for disputes they say what
    staff must know ("already submitted", "past due")."""
    try:
        return _call(request)
    except ProviderRequestInvalid as refused:
        said = getattr(refused.__cause__, "user_message", None)
        if said:
            raise ProviderRequestInvalid(said) from refused.__cause__
        raise
