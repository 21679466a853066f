"""Sample Stripe events, shaped like the objects in Stripe's API reference, signed the way Stripe
signs webhooks. localstripe never emits refund, dispute or early-fraud-warning events, so the
`stripe_send_event` command (for the demo) and the tests build them here."""

import hashlib
import hmac
import json
import secrets
import time


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
