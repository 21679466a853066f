"""The billing domain's data, one module per idea: hours, money, Stripe events, receipts,
automatic top-up, statements and the background jobs' runs."""

from billing.models.audit import ActionKey, AuditEntry
from billing.models.hours import (
    Account,
    LedgerEntry,
    Lot,
    Plan,
    Usage,
    default_currency,
    default_low_balance_minutes,
    price_per_hour_cents,
    share_of_minutes,
)
from billing.models.operations import JobRun
from billing.models.payments import CardSetup, Dispute, FraudFlag, Payment, PaymentMethod, Refund
from billing.models.receipts import Receipt, ReceiptCounter
from billing.models.statements import StatementEmail
from billing.models.subscriptions import Subscription
from billing.models.topups import AutoTopUp, AutoTopUpEvent
from billing.models.webhooks import WebhookEvent

__all__ = [
    "Account",
    "ActionKey",
    "AuditEntry",
    "AutoTopUp",
    "AutoTopUpEvent",
    "CardSetup",
    "Dispute",
    "FraudFlag",
    "JobRun",
    "LedgerEntry",
    "Lot",
    "Payment",
    "PaymentMethod",
    "Plan",
    "Receipt",
    "ReceiptCounter",
    "Refund",
    "StatementEmail",
    "Subscription",
    "Usage",
    "WebhookEvent",
    "default_currency",
    "default_low_balance_minutes",
    "price_per_hour_cents",
    "share_of_minutes",
]
