"""Sample Stripe events, shaped like the objects in Stripe's API reference, signed the way Stripe
signs webhooks. localstripe never emits refund, dispute or early-fraud-warning events, so the
`stripe_send_event` command (for the demo) and the tests build them here."""

import hashlib
import hmac
import json
import secrets
import time

from billing.subscriptions import period_after


def signature_header(payload, secret, timestamp=None):
    """Stripe-Signature for `payload` (bytes): t=<unix time>,v1=HMAC-SHA256(secret, "t.payload")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(event_type, data_object, *, event_id=None, created=None):
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": data_object},
    }


def refund(payment, *, amount_cents=None, status="succeeded", refund_id=None):
    return {
        "id": refund_id or f"re_{secrets.token_hex(12)}",
        "object": "refund",
        "amount": payment.amount_cents if amount_cents is None else amount_cents,
        "currency": payment.currency.lower(),
        "payment_intent": payment.stripe_payment_intent_id,
        "charge": f"ch_for_{payment.stripe_payment_intent_id}",
        "reason": "requested_by_customer",
        "status": status,
        "created": int(time.time()),
    }


def charge_refunded(payment, refunds):
    return {
        "id": f"ch_for_{payment.stripe_payment_intent_id}",
        "object": "charge",
        "amount": payment.amount_cents,
        "amount_refunded": sum(item["amount"] for item in refunds),
        "currency": payment.currency.lower(),
        "payment_intent": payment.stripe_payment_intent_id,
        "refunded": sum(item["amount"] for item in refunds) >= payment.amount_cents,
        "refunds": {"object": "list", "data": refunds, "has_more": False},
    }


def dispute(payment, *, status="needs_response", withdrawn=False, reinstated=False, dispute_id=None, amount_cents=None):
    amount = payment.amount_cents if amount_cents is None else amount_cents
    movements = ([{"amount": -amount, "fee": 1500, "type": "adjustment"}] if withdrawn else []) + (
        [{"amount": amount, "fee": -1500, "type": "adjustment"}] if reinstated else []
    )
    return {
        "id": dispute_id or f"dp_{secrets.token_hex(12)}",
        "object": "dispute",
        "amount": amount,
        "currency": payment.currency.lower(),
        "charge": f"ch_for_{payment.stripe_payment_intent_id}",
        "payment_intent": payment.stripe_payment_intent_id,
        "reason": "fraudulent",
        "status": status,
        "is_charge_refundable": False,
        "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False, "submission_count": 0},
        "balance_transactions": movements,
        "created": int(time.time()),
    }


def early_fraud_warning(payment, *, warning_id=None):
    return {
        "id": warning_id or f"issfr_{secrets.token_hex(12)}",
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": f"ch_for_{payment.stripe_payment_intent_id}",
        "payment_intent": payment.stripe_payment_intent_id,
        "fraud_type": "made_with_stolen_card",
        "created": int(time.time()),
        "livemode": False,
    }


def body(stripe_event):
    return json.dumps(stripe_event, separators=(",", ":")).encode()


# Subscriptions and invoices, in the shapes of API version 2026-10-28 (the one stripe-python 16
# speaks): the subscription's period on its item, the invoice's subscription under
# `parent.subscription_details`, its PaymentIntent under `payments`, its lines' price under
# `pricing`. `legacy=True` gives the shapes before 2025-03-31 (and localstripe's): period on the
# subscription, `subscription` and `payment_intent` on the invoice, `price` and `proration` on lines.


def subscription(row, *, status="active", period=None, cancel_at_period_end=False, price_id=None, legacy=False):
    start, end = period or _period_of(row)
    price = price_id or row.plan.stripe_price_id or f"price_demo_{row.plan_id}"
    item = {
        "id": row.stripe_item_id or f"si_demo_{row.pk}",
        "object": "subscription_item",
        "price": {
            "id": price,
            "object": "price",
            "unit_amount": row.plan.price_cents,
            "currency": row.plan.currency.lower(),
            "recurring": {"interval": row.plan.interval, "interval_count": 1},
            "product": row.plan.stripe_product_id or f"prod_demo_{row.plan_id}",
        },
        "quantity": 1,
        "subscription": row.stripe_subscription_id,
    }
    if not legacy:
        item |= {"current_period_start": start, "current_period_end": end}
    ended = status in ("canceled", "incomplete_expired")
    body = {
        "id": row.stripe_subscription_id,
        "object": "subscription",
        "customer": row.account.stripe_customer_id,
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": end if cancel_at_period_end else None,
        "canceled_at": int(time.time()) if ended or cancel_at_period_end else None,
        "ended_at": int(time.time()) if ended else None,
        "collection_method": "charge_automatically",
        "default_payment_method": None,
        "latest_invoice": None,
        "livemode": False,
        "metadata": {"subscription_id": str(row.pk), "account_id": str(row.account_id)},
        "items": {"object": "list", "data": [item], "has_more": False},
        "start_date": start,
    }
    if legacy:
        body |= {"current_period_start": start, "current_period_end": end}
    return body


def invoice(
    row,
    *,
    status="paid",
    period=None,
    amount_cents=None,
    billing_reason="subscription_cycle",
    attempt_count=1,
    payment_intent_id=None,
    invoice_id=None,
    lines=None,
    legacy=False,
):
    """An invoice of subscription `row` for `period` (Unix start, end): paid, or "open" after a
    declined attempt (next attempt in three days)."""
    start, end = period or _period_of(row)
    amount = row.plan.price_cents if amount_cents is None else amount_cents
    intent = payment_intent_id or f"pi_{secrets.token_hex(12)}"
    paid = status == "paid"
    lines = lines or [invoice_line(row, amount_cents=amount, period=(start, end), legacy=legacy)]
    metadata = {"subscription_id": str(row.pk), "account_id": str(row.account_id)}
    body = {
        "id": invoice_id or f"in_{secrets.token_hex(12)}",
        "object": "invoice",
        "customer": row.account.stripe_customer_id,
        "status": status,
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "currency": row.plan.currency.lower(),
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "next_payment_attempt": None if paid else int(time.time()) + 3 * 86400,
        "created": int(time.time()),
        "livemode": False,
        "lines": {"object": "list", "data": lines, "has_more": False},
        "status_transitions": {"paid_at": int(time.time()) if paid else None, "finalized_at": start},
    }
    if legacy:
        return body | {
            "subscription": row.stripe_subscription_id,
            "subscription_details": {"metadata": metadata},
            "payment_intent": intent,
            "paid": paid,
        }
    return body | {
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": metadata, "subscription": row.stripe_subscription_id},
        },
        "payments": {
            "object": "list",
            "data": [
                {
                    "id": f"inpay_{secrets.token_hex(12)}",
                    "object": "invoice_payment",
                    "amount_paid": amount if paid else None,
                    "amount_requested": amount,
                    "currency": row.plan.currency.lower(),
                    "is_default": True,
                    "status": "paid" if paid else "open",
                    "payment": {"type": "payment_intent", "payment_intent": intent},
                }
            ],
            "has_more": False,
        },
    }


def invoice_line(row, *, amount_cents, period, price_id=None, proration=False, description=None, legacy=False):
    price = price_id or row.plan.stripe_price_id or f"price_demo_{row.plan_id}"
    start, end = period
    line = {
        "id": f"il_{secrets.token_hex(12)}",
        "object": "line_item",
        "amount": amount_cents,
        "currency": row.plan.currency.lower(),
        "description": description or f"1 × {row.plan.name}",
        "period": {"start": start, "end": end},
        "quantity": 1,
    }
    if legacy:
        return line | {"price": {"id": price, "object": "price"}, "proration": proration, "type": "subscription"}
    return line | {
        "pricing": {"type": "price_details", "price_details": {"price": price, "product": row.plan.stripe_product_id}},
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "subscription": row.stripe_subscription_id,
                "subscription_item": row.stripe_item_id or f"si_demo_{row.pk}",
                "proration": proration,
                "invoice_item": None,
            },
        },
    }


def next_period(row):
    """The period after the subscription's current one, as Unix (start, end)."""
    start = row.current_period_end
    return int(start.timestamp()), int(period_after(start, row.plan.interval, 1).timestamp())


def _period_of(row):
    return int(row.current_period_start.timestamp()), int(row.current_period_end.timestamp())
