"""Domain errors of the billing domain. Each carries a message fit to show a student or staff, in
the language active where it is raised (the request's, or the reader's under reader_locale)."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing.formatting import date_text


class BillingError(Exception):
    """Base of every error a view may turn into a message."""


class LedgerError(BillingError):
    """A ledger operation that can never be valid as asked (zero hours, no reason, ...)."""


class InsufficientHours(BillingError):
    def __init__(self, *, available_minutes, requested_minutes):
        self.available_minutes = available_minutes
        self.requested_minutes = requested_minutes
        super().__init__(
            _("Not enough hours: %(requested)s minutes requested, %(available)s available.")
            % {"requested": requested_minutes, "available": available_minutes}
        )


class LotExpired(BillingError):
    def __init__(self, lot):
        self.lot = lot
        super().__init__(
            _("%(lot)s expired on %(date)s; its hours can no longer change.")
            % {"lot": lot.name, "date": date_text(lot.expires_at)}
        )


class PaymentRefused(BillingError):
    """We refused to start a payment (stale button, inactive plan, no card...); nothing was charged."""


class PaymentInProgress(PaymentRefused):
    def __init__(self):
        super().__init__(_("Another payment for your account is being processed. Please wait a moment."))


class PaymentDeclined(BillingError):
    """The card was declined; `code` is Stripe's decline code (or error code)."""

    def __init__(self, message, *, code="", payment_intent_id=None):
        self.code = code
        self.payment_intent_id = payment_intent_id
        super().__init__(message)


class CardNotFound(BillingError):
    """Stripe no longer knows a card we had saved."""

    def __init__(self):
        super().__init__(_("This card is no longer available. Please add it again or choose another card."))


class SubscriptionRefused(BillingError):
    """We refused a subscription request (a plan not for sale, a second subscription, one that is not
    in a state for it); nothing was changed at Stripe."""


class StripeObjectNotFound(BillingError):
    """Stripe has no such object (an invoice or subscription id it does not know)."""


class CustomerNotFound(BillingError):
    """Stripe no longer knows the account's customer (deleted in the Dashboard, or a reset stand-in)."""


class WebhookInvalid(BillingError):
    """A webhook request that is not a correctly signed, recent Stripe event."""


class ProviderRequestInvalid(BillingError):
    """Stripe refused a request as invalid: a bug or a configuration problem on our side."""


class ProviderSearchIncomplete(BillingError):
    """A search at Stripe stopped at its limit without finding what it looked for: it may be further on."""


class ProviderAnswerUnreadable(BillingError):
    """Stripe answered in a shape we cannot read (a field missing): we know no more than without an answer."""


class ProviderUnavailable(BillingError):
    """Stripe could not be reached, timed out or failed. `maybe_charged` tells whether a charge may
    have happened anyway (a request that was sent but not answered)."""

    def __init__(self, *, maybe_charged):
        self.maybe_charged = maybe_charged
        super().__init__(_("We could not reach the payment provider."))


class AccountBlocked(PaymentRefused):
    """The account is blocked (after a confirmed fraud flag): no purchase starts, nothing is charged."""

    # English, as tests and views name it; shown through gettext (`_(AccountBlocked.MESSAGE)`).
    MESSAGE = gettext_noop("Purchases are paused on your account. Please contact your tutoring coordinator.")

    def __init__(self):
        super().__init__(_(self.MESSAGE))


class AccountErased(BillingError):
    """A staff action that would let an account erased at its student's request buy again."""

    MESSAGE = gettext_noop("This student was erased at their request: their account stays blocked for good.")

    def __init__(self):
        super().__init__(_(self.MESSAGE))


class FraudFlagRefused(BillingError):
    """A staff action on a fraud flag that is no longer open (someone cleared or confirmed it meanwhile)."""

    def __init__(self, flag):
        self.flag = flag
        if flag.status == flag.Status.CONFIRMED:
            message = _("This flag was already confirmed; nothing was changed.")
        elif flag.status == flag.Status.CLEARED:
            message = _("This flag was already cleared; nothing was changed.")
        else:
            message = _("This flag was already %(status)s; nothing was changed.") % {
                "status": flag.get_status_display().lower()
            }
        super().__init__(message)


class ReasonRequired(BillingError):
    """A staff action that must say why (block, unblock, confirm a flag) or what (a note) was given none."""


class AccountDetailsInvalid(BillingError):
    """Account details that cannot be saved as given (a tax number that is not valid, a reminder level
    out of range); nothing was changed."""


class ActionAlreadyTaken(BillingError):
    """A console form's one-time key that was used already (a double submit, or two at once)."""

    # English, as tests name it; shown through gettext.
    MESSAGE = gettext_noop("This was already done; nothing was changed again.")

    def __init__(self):
        super().__init__(_(self.MESSAGE))


class HoursActionRefused(BillingError):
    """A staff action on hours that cannot be taken as asked (a date not later, a lot outside the
    reopening window, a session already voided, a bulk selection that changed); nothing changed."""


class VoidTooLate(HoursActionRefused):
    """Support may void a session only within a day of its recording; Finance may at any time."""

    def __init__(self):
        super().__init__(_("This session was recorded more than 24 hours ago; only Finance can void it now."))


class StatementRangeInvalid(BillingError):
    """A statement asked for a range that cannot be one (ending before it starts, longer than the
    longest statement, outside the years the portal keeps); nothing was rendered."""
