"""A student's own details: the name and billing details printed on documents issued from then on
(an issued receipt keeps its snapshot), and the low-balance reminder level.

The reminder level is in minutes; 0 turns the low-balance reminder off. A balance of 0 h still
raises the "no hours left" alert at any level (alerts.notifications): having nothing left is news.
"""

import re

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing.audit import audit_reason, audit_record
from billing.errors import AccountDetailsInvalid
from billing.ledger import account_lock

# The highest reminder level a student (or staff) may set: far above any package, so a typo shows.
LOW_BALANCE_LEVEL_MAX_MINUTES = 200 * 60
# English, as tests and forms name them; only marked for translation, and translated where shown
# (`_(TAX_ID_INVALID)`; a form's class-level error_messages need `gettext_lazy(LEVEL_OUT_OF_RANGE)`).
LEVEL_OUT_OF_RANGE = gettext_noop("The reminder level must be between 0 h and 200 h.")
TAX_ID_INVALID = gettext_noop(
    "This is not a valid tax number. Enter a Portuguese NIF (9 digits, optionally starting with PT) "
    "or an EU VAT number starting with its country code, such as ES12345678Z."
)
NIF_LABEL = "NIF"  # the same word in both languages
VAT_LABEL = gettext_noop("VAT number")
# Country prefixes of the other EU VAT numbers (Portugal's is read as a NIF; Greece's is EL; XI is
# Northern Ireland under the Windsor Framework).
EU_VAT_PREFIXES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "EL",
        "ES",
        "FI",
        "FR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "RO",
        "SE",
        "SI",
        "SK",
        "XI",
    ]
)
_SEPARATORS = re.compile(r"[\s.\-/]")
_NIF = re.compile(r"^\d{9}$")
_VAT = re.compile(r"^([A-Z]{2})([0-9A-Z]{2,12})$")


def tax_id_normalise(text):
    """The tax number as stored and printed: a Portuguese NIF as its 9 digits (a "PT" prefix
    dropped, the check digit verified), another EU VAT number as its country prefix and number
    (its format is not checked further); "" stays "". Spaces, dots and dashes are ignored.
    AccountDetailsInvalid when it is neither."""
    compact = _SEPARATORS.sub("", text or "").upper()
    if not compact:
        return ""
    if compact.startswith("PT"):
        compact = compact[2:]
    if _NIF.match(compact):
        if not _nif_check_digit_ok(compact):
            raise AccountDetailsInvalid(_(TAX_ID_INVALID))
        return compact
    vat = _VAT.match(compact)
    if vat is None or vat.group(1) not in EU_VAT_PREFIXES:
        raise AccountDetailsInvalid(_(TAX_ID_INVALID))
    return compact


def tax_id_label(tax_id):
    """What a document calls the number: "NIF" for a Portuguese one, "VAT number" for another (in
    the active language: a receipt's, under the student's reader_locale)."""
    return NIF_LABEL if _NIF.match(tax_id) else _(VAT_LABEL)


def _nif_check_digit_ok(nif):
    # Portugal's modulo 11: the first eight digits weighted 9..2; a remainder of 0 or 1 gives 0.
    remainder = sum(int(digit) * weight for digit, weight in zip(nif[:8], range(9, 1, -1), strict=True)) % 11
    return int(nif[8]) == (0 if remainder < 2 else 11 - remainder)


def billing_details_save(*, account, first_name, last_name, billing_address, tax_id):
    """Save the student's name (on the user) and billing details (on the account), trimmed; the tax
    number normalised by tax_id_normalise. Returns the account."""
    tax_id = tax_id_normalise(tax_id)
    with transaction.atomic():
        account = account_lock(account_id=account.pk)
        user = account.user
        user.first_name = first_name.strip()
        user.last_name = last_name.strip()
        user.save(update_fields=["first_name", "last_name"])
        account.billing_address = billing_address.strip()
        account.tax_id = tax_id
        account.save(update_fields=["billing_address", "tax_id"])
    return account


def low_balance_level_set(*, account, minutes, actor=None, reason="", ip_address=None):
    """Set the account's low-balance reminder level (0 turns the reminder off). A staff member
    (`actor`) must give a reason, and the change is audited with the level before and after.
    Returns the account."""
    if not 0 <= minutes <= LOW_BALANCE_LEVEL_MAX_MINUTES:
        raise AccountDetailsInvalid(_(LEVEL_OUT_OF_RANGE))
    if actor is not None:
        reason = audit_reason(reason)
    with transaction.atomic():
        account = account_lock(account_id=account.pk)
        before = account.low_balance_threshold_minutes
        account.low_balance_threshold_minutes = minutes
        account.save(update_fields=["low_balance_threshold_minutes"])
        if actor is not None:
            audit_record(
                actor=actor,
                action="account.low_balance",
                target=account,
                reason=reason,
                before={"low_balance_threshold_minutes": before},
                after={"low_balance_threshold_minutes": minutes},
                ip_address=ip_address,
            )
    return account
