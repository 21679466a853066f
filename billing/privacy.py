"""A student's billing records in a privacy request (GDPR): what an export of their data holds of the
billing domain, why an erasure must wait, and what erasing them changes here.

Erasure keeps what the law and the books need: receipts and credit notes (issued documents, kept
for the tax authorities with the name and address they were issued with), payments, refunds,
disputes, lots and the ledger, so every balance and every figure still adds up. What names or can
reach the student goes: billing details, saved cards, the Stripe customer's id (the customer itself
is deleted at Stripe by portal.privacy first), automatic top-up, the ability to buy, the evidence
drafted for closed disputes, and the personal fields of the Stripe events about them.

portal.privacy orchestrates both (it also holds the user, sign-ins and alerts, which billing may not
import)."""

from functools import partial

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing import cards
from billing.errors import BillingError
from billing.fraud import blocks
from billing.models import (
    Account,
    AutoTopUp,
    AutoTopUpEvent,
    CardSetup,
    Dispute,
    LedgerEntry,
    Lot,
    Payment,
    PaymentMethod,
    Receipt,
    Refund,
    StatementEmail,
    Subscription,
    Usage,
    WebhookEvent,
)
from billing.models.redaction import BATCH, rows_rewritten, words_replaced
from billing.models.webhooks import REDACTED

# Stored as the block's reason, in English like the other reasons staff read.
ERASED_BLOCK_REASON = "Erased at the student's request."
# In English (tests name them); translated where they are shown.
PAYMENT_IN_FLIGHT = gettext_noop("A payment of this student is still being processed. Erase them once it has settled.")
PAYMENT_IN_REVIEW = gettext_noop(
    "A payment of this student waits for staff review, and money may still move. Settle it on its page, then "
    "erase them."
)
SUBSCRIPTION_LIVE = gettext_noop(
    "This student has a subscription that can still charge them. Cancel it first, then erase them."
)
DISPUTE_OPEN = gettext_noop(
    "A dispute about one of this student's payments is still open, and answering it needs their records. "
    "Erase them once it is closed."
)
# What a Stripe object may say about a person, under these names at any depth (customers, cards'
# billing details, charges, invoices, checkout and dispute evidence). Ids, amounts, statuses and our
# own metadata (payment and account ids) stay, so an event still pending can still be applied.
PERSONAL_FIELDS = frozenset(
    {
        "address",
        "billing_details",
        "customer_address",
        "customer_details",
        "customer_email",
        "customer_name",
        "customer_phone",
        "customer_shipping",
        "customer_tax_ids",
        "description",
        "email",
        "evidence",
        "hosted_invoice_url",
        "invoice_pdf",
        "ip_address",
        "name",
        "phone",
        "receipt_email",
        "receipt_url",
        "shipping",
        "tax_ids",
    }
)
# Nothing to redact: an absent address stays recognisably absent.
EMPTY = (None, "", {}, [])


class ErasureRefused(BillingError):
    """The student cannot be erased now; the message says why (nothing was changed)."""


def account_records(*, account, documents):
    """The account's billing records as plain data (amounts in cents with their currency, times as
    datetimes), in sections: [(name, record or None)] for one record, [(name, iterator of records)]
    for a list. Each list is one query, read in chunks when it is iterated: a long history never
    sits in memory at once. `documents` are its receipts (`account_documents`), listed by number
    and the file of their PDF."""
    return [
        (
            "account",
            {
                "id": account.pk,
                "created_at": account.created_at,
                "balance_minutes": account.balance_minutes,
                "low_balance_reminder_minutes": account.low_balance_threshold_minutes,
                "monthly_statement_emails": account.statement_emails,
                "purchases_paused_since": account.blocked_at,
            },
        ),
        # Printed on documents issued from now on, under the name in the profile.
        ("billing_details", {"billing_address": account.billing_address, "tax_id": account.tax_id}),
        ("lots", records(Lot.objects.filter(account=account).order_by("purchased_at", "pk"), _lot)),
        ("ledger_entries", records(LedgerEntry.objects.filter(account=account).order_by("pk"), _ledger_entry)),
        ("sessions", records(Usage.objects.filter(account=account).order_by("occurred_at", "pk"), _session)),
        (
            "payments",
            records(
                Payment.objects.filter(account=account).select_related("plan", "payment_method").order_by("pk"),
                _payment,
            ),
        ),
        ("refunds", records(Refund.objects.filter(payment__account=account).order_by("created_at", "pk"), _refund)),
        ("disputes", records(Dispute.objects.filter(payment__account=account).order_by("created_at", "pk"), _dispute)),
        ("receipts", [_receipt(document) for document in documents]),
        ("cards", records(PaymentMethod.objects.filter(account=account).order_by("created_at", "pk"), _card)),
        (
            "subscriptions",
            records(Subscription.objects.filter(account=account).select_related("plan").order_by("pk"), _subscription),
        ),
        ("automatic_top_up", _auto_top_up(AutoTopUp.objects.select_related("plan", "card").filter(account=account))),
        (
            "automatic_top_up_events",
            records(AutoTopUpEvent.objects.filter(auto_top_up__account=account).order_by("created_at", "pk"), _top_up),
        ),
        ("statements_emailed", records(StatementEmail.objects.filter(account=account).order_by("month"), _statement)),
    ]


def account_documents(*, account):
    """The account's receipts, credit notes and their cancellations, oldest first, each with the name
    its PDF has in an export (`export_path`)."""
    documents = list(Receipt.objects.filter(account=account).order_by("issued_at", "pk"))
    for document in documents:
        document.export_path = f"receipts/{document.filename}"
    return documents


def account_erasure_refusal(*, account):
    """Why the account's billing stands in the way of erasing the student now, in words for staff, or
    "". A payment in flight could still be charged (or be settled onto a card we forget), and one
    waiting for review may still move money (Stripe refused to cancel it, or we lost its intent); a live
    subscription is a contract Finance ends deliberately, at Stripe, with its own reason; an open
    dispute is answered with the student's records."""
    if Payment.objects.filter(account=account, status__in=Payment.IN_FLIGHT).exists():
        return _(PAYMENT_IN_FLIGHT)
    if Payment.objects.filter(account=account, status=Payment.Status.NEEDS_REVIEW).exists():
        return _(PAYMENT_IN_REVIEW)
    if Subscription.objects.filter(account=account, status__in=Subscription.LIVE).exists():
        return _(SUBSCRIPTION_LIVE)
    if Dispute.objects.filter(payment__account=account, closed=False).exists():
        return _(DISPUTE_OPEN)
    return ""


def account_billing_erase(*, account, actor, replacements, ip_address=None):
    """Erase what the billing domain holds of the student, inside the caller's transaction and
    under the account lock it holds, once the Stripe customer is deleted at Stripe. `replacements`
    ({their email or name: what replaces it}) rewrite what staff typed about them (a refund's
    reason, a voided session's, automatic top-up's notes). Kept: documents, payments, refunds,
    disputes, lots and the ledger (whose entries, append-only, keep their reasons as typed).
    Returns the account."""
    account_events_redact(accounts=[account])
    # The customer is gone at Stripe: its id and its cards are forgotten as customer.deleted does.
    cards.customer_forget(account=account)
    _unused_cards(account).delete()
    account.billing_address = account.tax_id = ""
    account.statement_emails = False
    account.save(update_fields=["billing_address", "tax_id", "statement_emails"])
    _auto_top_up_end(account, actor)
    Dispute.objects.filter(payment__account=account).exclude(evidence={}).update(evidence={})
    # Nothing can be bought for them again, whatever still holds a card or a button.
    account = blocks.account_block(account=account, actor=actor, reason=ERASED_BLOCK_REASON, ip_address=ip_address)
    for rows, field in (
        (Refund.objects.filter(payment__account=account), "reason"),
        (Usage.objects.filter(account=account), "void_reason"),
        (AutoTopUpEvent.objects.filter(auto_top_up__account=account), "detail"),
        (AutoTopUp.objects.filter(account=account), "paused_over_detail"),
        (Account.objects.filter(pk=account.pk), "blocked_reason"),
    ):
        _typed_texts_replace(rows, field, replacements)
    return account


def account_events_redact(*, accounts):
    """Replace the personal fields (PERSONAL_FIELDS) of every stored Stripe event about these
    accounts: found by their payments' PaymentIntents and invoices, their customer, cards,
    subscriptions and card setups, and our metadata naming the account (which the customer.deleted
    Stripe sends after an erasure still carries). Writes only the events that change, in batches, so
    running it again changes nothing. Returns how many changed."""
    events = WebhookEvent.objects.filter(_events_about(accounts))
    changed = list(rows_rewritten(events, ["payload"], personal_fields_redacted))
    WebhookEvent.objects.bulk_update(changed, ["payload"], batch_size=BATCH)
    return len(changed)


def personal_fields_redacted(value):
    """A Stripe object with the value under every PERSONAL_FIELDS key replaced, at any depth (an
    empty value stays empty)."""
    if isinstance(value, dict):
        return {
            key: REDACTED if key in PERSONAL_FIELDS and item not in EMPTY else personal_fields_redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [personal_fields_redacted(item) for item in value]
    return value


def _events_about(accounts):
    account_ids = [account.pk for account in accounts]
    payments = Payment.objects.filter(account_id__in=account_ids)
    object_ids = {account.stripe_customer_id for account in accounts}
    for ids in (
        PaymentMethod.objects.filter(account_id__in=account_ids).values_list("stripe_payment_method_id", flat=True),
        Subscription.objects.filter(account_id__in=account_ids).values_list("stripe_subscription_id", flat=True),
        payments.values_list("stripe_invoice_id", flat=True),
        CardSetup.objects.filter(account_id__in=account_ids).values_list("stripe_setup_intent_id", flat=True),
    ):
        object_ids.update(ids)
    object_ids = sorted(object_ids - {None, ""})
    intents = payments.exclude(stripe_payment_intent_id=None).values("stripe_payment_intent_id")
    return (
        Q(payment_intent_id__in=intents)
        | Q(payload__data__object__id__in=object_ids)
        | Q(payload__data__object__customer__in=object_ids)
        | Q(payload__data__object__metadata__account_id__in=[str(pk) for pk in account_ids])
    )


def _typed_texts_replace(rows, field, replacements):
    changed = rows_rewritten(rows, [field], partial(words_replaced, replacements=replacements))
    rows.model.objects.bulk_update(list(changed), [field], batch_size=BATCH)


def _unused_cards(account):
    """The account's cards nothing kept points at: a payment, a subscription or automatic top-up
    keeps its card's row (brand and last 4 digits are what those records name)."""
    kept_by_top_up = AutoTopUp.objects.filter(account=account).values("card_id")
    return PaymentMethod.objects.filter(account=account, payments__isnull=True, subscriptions__isnull=True).exclude(
        pk__in=kept_by_top_up
    )


def _auto_top_up_end(account, actor):
    """Off, from any state (a pause by staff included: Finance is erasing), with a line in its history."""
    setting = AutoTopUp.objects.select_for_update().filter(account=account).exclude(status=AutoTopUp.Status.OFF)
    setting = setting.first()
    if setting is None:
        return
    setting.status, setting.pause_reason, setting.pause_detail = AutoTopUp.Status.OFF, "", ""
    setting.paused_at = setting.resumes_at = None
    setting.episode_open = False
    setting.save()
    AutoTopUpEvent.objects.create(
        auto_top_up=setting, kind=AutoTopUpEvent.Kind.TURNED_OFF, episode=setting.episode, actor=actor
    )


def records(queryset, record):
    """`record(row)` of each row of `queryset`, read in chunks as they are wanted."""
    return (record(row) for row in queryset.iterator(chunk_size=500))


def _lot(lot):
    return {
        "id": lot.pk,
        "name": lot.name,
        "source": lot.source,
        "minutes_purchased": lot.minutes_purchased,
        "minutes_remaining": lot.minutes_remaining,
        "price_cents": lot.price_cents,
        "currency": lot.currency,
        "purchased_at": lot.purchased_at,
        "expires_at": lot.expires_at,
        "expired_at": lot.expired_at,
    }


def _ledger_entry(entry):
    return {
        "id": entry.pk,
        "lot_id": entry.lot_id,
        "kind": entry.kind,
        "minutes": entry.minutes,
        "balance_after_minutes": entry.balance_after,
        "session_id": entry.usage_id,
        "reason": entry.reason,
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
    }


def _session(usage):
    return {
        "id": usage.pk,
        "occurred_at": usage.occurred_at,
        "minutes": usage.minutes,
        "tutor": usage.tutor,
        "subject": usage.subject,
        "recorded_at": usage.recorded_at,
        "voided_at": usage.voided_at,
        "void_reason": usage.void_reason,
    }


def _payment(payment):
    return {
        "id": payment.pk,
        "kind": payment.kind,
        "plan": payment.plan.name,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "minutes": payment.minutes,
        "status": payment.status,
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
        "card": payment.payment_method.label if payment.payment_method else None,
        "lot_id": payment.lot_id,
        "period_start": payment.period_start,
        "period_end": payment.period_end,
        "stripe_payment_intent_id": payment.stripe_payment_intent_id,
        "stripe_invoice_id": payment.stripe_invoice_id,
        "created_at": payment.created_at,
        "settled_at": payment.settled_at,
    }


def _refund(refund):
    return {
        "id": refund.pk,
        "payment_id": refund.payment_id,
        "amount_cents": refund.amount_cents,
        "currency": refund.currency,
        "status": refund.status,
        "minutes_taken_back": refund.minutes_reversed,
        "minutes_already_used": refund.minutes_short,
        "reason": refund.reason,
        "stripe_refund_id": refund.stripe_refund_id,
        "created_at": refund.created_at,
    }


def _dispute(dispute):
    return {
        "id": dispute.pk,
        "payment_id": dispute.payment_id,
        "amount_cents": dispute.amount_cents,
        "currency": dispute.currency,
        "reason": dispute.reason,
        "status": dispute.status,
        "minutes_held": dispute.minutes_held,
        "closed": dispute.closed,
        "stripe_dispute_id": dispute.stripe_dispute_id,
        "created_at": dispute.created_at,
    }


def _receipt(document):
    return {
        "number": document.number,
        "kind": document.kind,
        "issued_at": document.issued_at,
        "amount_cents": document.snapshot.get("amount_cents"),
        "currency": document.snapshot.get("currency"),
        "payment_id": document.payment_id,
        "refund_id": document.refund_id,
        "file": document.export_path,
    }


def _card(card):
    return {
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "default": card.is_default,
        "added_at": card.created_at,
        "removed_at": card.removed_at,
    }


def _subscription(subscription):
    return {
        "id": subscription.pk,
        "plan": subscription.plan.name,
        "status": subscription.status,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "current_period_start": subscription.current_period_start,
        "current_period_end": subscription.current_period_end,
        "stripe_subscription_id": subscription.stripe_subscription_id,
        "created_at": subscription.created_at,
        "canceled_at": subscription.canceled_at,
        "ended_at": subscription.ended_at,
    }


def _auto_top_up(settings):
    setting = settings.first()
    if setting is None:
        return None
    return {
        "status": setting.status,
        "below_minutes": setting.threshold_minutes,
        "plan": setting.plan.name,
        "card": setting.card.label,
        "most_top_ups_a_month": setting.monthly_count_cap,
        "most_a_month_cents": setting.monthly_amount_cap_cents,
        "currency": setting.plan.currency,
        "pause_reason": setting.pause_reason,
        # Staff's reason for their pause is for the audit log, as on the student's own page.
        "pause_detail": "" if setting.pause_reason == AutoTopUp.PauseReason.STAFF else setting.pause_detail,
        "paused_at": setting.paused_at,
        "resumes_at": setting.resumes_at,
        "created_at": setting.created_at,
    }


def _top_up(event):
    return {
        "kind": event.kind,
        "payment_id": event.payment_id,
        "pause_reason": event.pause_reason,
        "detail": "" if event.pause_reason == AutoTopUp.PauseReason.STAFF else event.detail,
        "at": event.created_at,
    }


def _statement(statement):
    return {"month": statement.month, "sent_at": statement.sent_at}
