"""Saved cards: start a card setup, save the card Stripe.js confirmed, make default, remove.

Card numbers never reach us: Stripe.js collects them and confirms a SetupIntent in the browser;
we read back only the PaymentMethod's id, brand, last 4 digits and expiry.
"""

import contextlib
import logging
import secrets

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing import stripe_gateway
from billing.errors import BillingError, CardNotFound
from billing.fraud.rules import fraud_card_setups_check
from billing.ledger import account_lock
from billing.models import Account, CardSetup, PaymentMethod, Subscription

logger = logging.getLogger(__name__)


# English, as tests name it; shown through gettext.
CARDS_PAUSED = gettext_noop(
    "Adding cards is paused on your account, like purchases. Please contact your tutoring coordinator."
)


class CardSetupFailed(BillingError):
    pass


def customer_ensure(*, account):
    """The account's Stripe customer id, created on first need."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    user = account.user
    customer_id = stripe_gateway.customer_create(email=user.email, name=user.get_full_name(), account_id=account.pk)
    with transaction.atomic():
        locked = account_lock(account_id=account.pk)
        if not locked.stripe_customer_id:
            locked.stripe_customer_id = customer_id
            locked.save(update_fields=["stripe_customer_id"])
    account.stripe_customer_id = locked.stripe_customer_id
    return account.stripe_customer_id


def card_setup_start(*, account):
    """A SetupIntent for the browser to confirm with the card the student types into Stripe.js.

    A customer Stripe no longer knows is replaced by a new one, and the cards saved under it are
    put aside, since they went with it. Every setup is recorded for the fraud rules. A blocked
    account gets none (CardSetupFailed): its secret would let the browser try a card with Stripe.
    """
    if Account.objects.filter(pk=account.pk, blocked_at__isnull=False).exists():  # as staff left it, now
        raise CardSetupFailed(_(CARDS_PAUSED))
    if account.stripe_customer_id and not stripe_gateway.customer_exists(account.stripe_customer_id):
        customer_forget(account=account)
    setup_intent = stripe_gateway.setup_intent_create(
        customer_id=customer_ensure(account=account), idempotency_key=f"setup-{account.pk}-{secrets.token_hex(8)}"
    )
    _card_setup_record(account, setup_intent)
    return setup_intent


def _card_setup_record(account, setup_intent):
    """Each setup lets a card be tried with Stripe: the fraud rules count them, saved or not. They
    only raise flags for staff, so whatever goes wrong here is logged and never keeps the card form
    from the student (the periodic scan looks again)."""
    try:
        with transaction.atomic():
            CardSetup.objects.create(account=account, stripe_setup_intent_id=setup_intent.id)
            fraud_card_setups_check(account=account)
    except Exception:
        logger.exception("Card setup %s of account %s was not checked by the fraud rules.", setup_intent.id, account.pk)


def customer_forget(*, account):
    """Stripe no longer has the account's customer: drop its id and put its cards aside."""
    with transaction.atomic():
        locked = account_lock(account_id=account.pk)
        locked.stripe_customer_id = ""
        locked.save(update_fields=["stripe_customer_id"])
        account.payment_methods.active().update(removed_at=timezone.now(), is_default=False)
    account.stripe_customer_id = ""


def card_save(*, account, setup_intent_id):
    """Save the card of a SetupIntent the browser confirmed. Saving the same card twice is harmless."""
    customer_id = customer_ensure(account=account)
    intent = stripe_gateway.setup_intent_retrieve(setup_intent_id)
    if intent.customer_id != customer_id:
        # Someone else's SetupIntent: answer as if it did not exist.
        raise CardSetupFailed(_("We could not find that card setup. Please try again."))
    if intent.status != stripe_gateway.StripeStatus.SUCCEEDED or not intent.payment_method_id:
        raise CardSetupFailed(_("The card was not confirmed. Please try again."))
    card = stripe_gateway.card_retrieve(intent.payment_method_id)
    if card.customer_id != customer_id:
        # Real Stripe attaches on confirmation; the stand-in does not, so attach explicitly.
        card = stripe_gateway.card_attach(payment_method_id=card.id, customer_id=customer_id)
    saved = _card_store(account, card)
    if saved.is_default:
        _stripe_default_follow(account, saved)
    return saved


def card_sync(*, account, payment_method_id):
    """Bring a saved card in line with Stripe (attached, detached or updated there, e.g. a new
    expiry date from the card network). Returns the card, or None if it is not the account's."""
    try:
        card = stripe_gateway.card_retrieve(payment_method_id)
    except CardNotFound:
        card = None
    if card is not None and account.stripe_customer_id and card.customer_id == account.stripe_customer_id:
        return _card_store(account, card)
    gone = account.payment_methods.active().filter(stripe_payment_method_id=payment_method_id).first()
    if gone:
        card_forget(card=gone)
    return None


def _card_store(account, card):
    with transaction.atomic():
        account_lock(account_id=account.pk)
        has_default = account.payment_methods.active().filter(is_default=True).exists()
        card_fields = {
            "account": account,
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
        }
        saved, _ = PaymentMethod.objects.update_or_create(
            stripe_payment_method_id=card.id,
            defaults=card_fields | {"removed_at": None},
            create_defaults=card_fields | {"is_default": not has_default},
        )
    return saved


def card_make_default(*, card):
    with transaction.atomic():
        account_lock(account_id=card.account_id)
        card.account.payment_methods.filter(is_default=True).update(is_default=False)
        card.is_default = True
        card.save(update_fields=["is_default"])
        # A subscription charges the customer's default card (billing.subscriptions): it follows.
        Subscription.objects.filter(account_id=card.account_id, status__in=Subscription.LIVE).update(
            payment_method=card
        )
    _stripe_default_follow(card.account, card)
    return card


def card_remove(*, card):
    """Detach the card in Stripe and put it aside here. Returns the default card afterwards (the
    newest other card takes a removed default's place), or None when no card is left."""
    with contextlib.suppress(CardNotFound):  # already gone at Stripe: only our record is left to update
        stripe_gateway.card_detach(card.stripe_payment_method_id)
    return card_forget(card=card)


def card_forget(*, card):
    """Put a card aside that Stripe no longer holds for us. Returns the account's default card now."""
    with transaction.atomic():
        account_lock(account_id=card.account_id)
        card = PaymentMethod.objects.get(pk=card.pk)
        was_default = card.is_default
        card.removed_at = card.removed_at or timezone.now()
        card.is_default = False
        card.save(update_fields=["removed_at", "is_default"])
        cards = card.account.payment_methods.active()
        successor = (
            cards.order_by("-created_at", "-id").first() if was_default else cards.filter(is_default=True).first()
        )
        if was_default and successor:
            successor.is_default = True
            successor.save(update_fields=["is_default"])
    if was_default:
        _stripe_default_follow(card.account, successor)
    return successor


def _stripe_default_follow(account, card):
    """Stripe's own default card mirrors ours. Only cosmetic (we always charge a named card), so a
    failure here is logged rather than undoing the student's choice."""
    try:
        stripe_gateway.customer_set_default_card(
            customer_id=account.stripe_customer_id, payment_method_id=card.stripe_payment_method_id if card else None
        )
    except BillingError:
        logger.warning("Could not mirror the default card of account %s at Stripe.", account.pk, exc_info=True)
