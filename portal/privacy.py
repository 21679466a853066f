"""Privacy requests (GDPR articles 15, 17 and 20): a student's copy of all their data, and their
erasure by Finance.

The copy is a ZIP: `data.json` (the profile, every billing record of billing.privacy, alerts and
sign-ins; amounts in cents with their currency, times in ISO 8601 with their offset, in the
student's time zone) and the PDF of each receipt and credit note. It is written into a temporary
file as it is read, one query per list: no secrets (no password hash, second-factor secret or
Stripe client secret) and nothing of anyone else.

Erasure anonymises the student everywhere (their user, email addresses, second factors, sessions,
sign-ins, alerts and staff's alerts about them, billing details, cards, Stripe events, the audit
log's copies of their email and name) and keeps the records the books and the law need (billing.
privacy says which). Order: the Stripe customer is deleted at Stripe first, then all of ours
changes in one transaction under the account lock. Stripe unreachable: nothing changed, try again.
Our transaction failing after Stripe deleted: ours is as it was, and the next try finds the customer
deleted (Stripe's 404 counts as done) and goes on. The other order would leave, for as long as Stripe
did not answer, a customer at Stripe that still names the student and holds their cards.
"""

import io
import json
import tempfile
import zipfile
from datetime import date, datetime
from functools import partial
from urllib.parse import quote_plus

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from alerts.models import STAFF_KINDS, STUDENT_KINDS, EmailOptOut, Notification
from alerts.notifications import email_preferences_save
from billing import stripe_gateway
from billing.audit import audit_reason, audit_record
from billing.errors import ProviderRequestInvalid, ProviderUnavailable
from billing.formatting import date_text, iso_date, iso_datetime, reader_locale
from billing.ledger import account_lock
from billing.models import Account, AuditEntry
from billing.models.redaction import BATCH, rows_rewritten, words_replaced
from billing.models.webhooks import REDACTED
from billing.privacy import (
    ErasureRefused,
    account_billing_erase,
    account_documents,
    account_erasure_refusal,
    account_records,
    records,
)
from billing.receipts import receipt_pdf
from portal.models import SignIn, User

EXPORT_VERSION = 1
# An export stays in memory up to this size, then goes on in a temporary file.
SPOOL_BYTES = 8 * 1024 * 1024
# A domain that can never receive mail (RFC 2606): an erased user's address reaches no one.
ERASED_DOMAIN = "erased.invalid"
# In English (tests name them); translated where they are shown.
ALREADY_ERASED = gettext_noop("This student was erased on %(date)s; there is nothing left to erase.")
STAFF_ACCOUNT = gettext_noop(
    "This is a staff member's account. Staff are not erased from the console: take away their staff access first."
)
EMAIL_MISMATCH = gettext_noop("That is not this student's email address, so nothing was erased. Type it as shown.")
STRIPE_FAILED = gettext_noop(
    "Stripe did not delete the customer (it could not be reached, or refused), so nothing was erased. "
    "Please try again in a moment."
)


def privacy_export(*, account):
    """The student's data as a ZIP in a temporary file, at its start (the caller closes it)."""
    user = account.user
    documents = account_documents(account=account)
    archive_file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (handed to the caller)
    try:
        with reader_locale(user), zipfile.ZipFile(archive_file, "w", zipfile.ZIP_DEFLATED) as archive:
            with io.TextIOWrapper(archive.open("data.json", "w"), encoding="utf-8") as data:
                _json_write(data, _sections(user, account, documents))
            for document in documents:
                # A PDF whose render failed earlier, or that storage lost, is rendered now.
                archive.writestr(document.export_path, receipt_pdf(receipt=document))
    except BaseException:
        archive_file.close()
        raise
    archive_file.seek(0)
    return archive_file


def privacy_export_by_staff(*, account, actor, ip_address=None):
    """The student's ZIP for staff (either level), audited once it is made."""
    archive_file = privacy_export(account=account)
    audit_record(actor=actor, action="privacy.export", target=account, ip_address=ip_address)
    return archive_file


def erasure_refusal(*, account, email=None):
    """Why the student cannot be erased now, in words for staff, or "": erased already, a staff
    account, `email` (what staff typed to confirm) not theirs, or what their billing says."""
    user = account.user
    if user.erased_at is not None:
        return _(ALREADY_ERASED) % {"date": date_text(user.erased_at)}
    if user.is_staff or user.is_superuser or user.groups.exists():
        return _(STAFF_ACCOUNT)
    if email is not None and email.strip().lower() != user.email.lower():
        return _(EMAIL_MISMATCH)
    return account_erasure_refusal(account=account)


def student_erase(*, account, actor, email, reason, ip_address=None):
    """Erase the student at their request (see the module's docstring), after staff typed their
    email to confirm and gave a reason. Raises ErasureRefused, ReasonRequired (nothing changed).
    Returns the account."""
    reason = audit_reason(reason)
    account = Account.objects.select_related("user").get(pk=account.pk)  # as it is now, not as the caller read it
    _refused_unless_erasable(account, email)
    customer_id = account.stripe_customer_id
    if customer_id:
        try:
            stripe_gateway.customer_delete(customer_id)
        except (ProviderUnavailable, ProviderRequestInvalid) as failed:
            raise ErasureRefused(_(STRIPE_FAILED)) from failed
    with transaction.atomic():
        account = account_lock(account_id=account.pk)
        account.user = user = User.objects.select_for_update().get(pk=account.user_id)
        # Checked again under the lock: a payment may have started while Stripe was answering.
        _refused_unless_erasable(account, email)
        former_email, replacements = user.email, _personal_texts(user)
        _user_anonymise(user)
        EmailAddress.objects.filter(user=user).delete()
        Authenticator.objects.filter(user=user).delete()
        SignIn.objects.filter(user=user).delete()
        _alerts_erase(user, former_email=former_email, replacements=replacements)
        account = account_billing_erase(account=account, actor=actor, replacements=replacements, ip_address=ip_address)
        audit_record(
            actor=actor,
            action="privacy.erase",
            target=account,
            reason=reason,
            after={"erased_at": user.erased_at.isoformat(), "stripe_customer": customer_id or None},
            ip_address=ip_address,
        )
        # Last, so that the reason just given loses the student's name too.
        AuditEntry.objects.filter(Q(account=account) | Q(payment__account=account)).personal_data_replace(
            replacements=replacements
        )
    return account


def erased_email(user):
    return f"erased-{user.pk}@{ERASED_DOMAIN}"


def _refused_unless_erasable(account, email):
    if refusal := erasure_refusal(account=account, email=email):
        raise ErasureRefused(refusal)


def _personal_texts(user):
    """What names the student in texts others wrote (audit entries, staff's alerts), and what
    replaces it: their email (also as a link's query carries it) and their names."""
    replacements = {user.email: erased_email(user), quote_plus(user.email): quote_plus(erased_email(user))}
    for name in (user.get_full_name(), user.first_name.strip(), user.last_name.strip()):
        if len(name) > 1:  # an initial is no name, and would match every lone letter
            replacements[name] = REDACTED
    return replacements


def _user_anonymise(user):
    user.email = erased_email(user)
    user.first_name = user.last_name = user.language = user.time_zone = ""
    user.last_login = None
    # A new password hash ends every session signed in with the old one (Django checks it on each
    # request), and no password signs in again.
    user.set_unusable_password()
    user.is_active = False
    user.erased_at = timezone.now()
    user.save()


def _alerts_erase(user, *, former_email, replacements):
    """The student's alerts keep their kind and dates (and their keys, so that no scan raises them
    again) but say nothing; none is emailed from now on. Staff's alerts about the student (named by
    the address they had) lose their email and names."""
    Notification.objects.filter(recipient=user).update(stored_title=REDACTED, stored_body="", params=None, link="")
    unsent = [Notification.Email.PENDING, Notification.Email.SENDING, Notification.Email.FAILED]
    Notification.objects.filter(recipient=user, email_status__in=unsent).update(email_status=Notification.Email.SKIPPED)
    email_preferences_save(user=user, emailed_kinds=[])
    about = Notification.objects.filter(kind__in=STAFF_KINDS, params__student=former_email)
    fields = ["params", "stored_title", "stored_body", "link"]
    changed = rows_rewritten(about, fields, partial(words_replaced, replacements=replacements))
    Notification.objects.bulk_update(list(changed), fields, batch_size=BATCH)


def _sections(user, account, documents):
    alerts = Notification.objects.filter(recipient=user, kind__in=STUDENT_KINDS).order_by("created_at", "pk")
    return [
        ("export", {"version": EXPORT_VERSION, "exported_at": timezone.now()}),
        ("profile", _profile(user)),
        *account_records(account=account, documents=documents),
        ("alerts", records(alerts, _alert)),
        (
            "email_alerts_turned_off",
            records(EmailOptOut.objects.filter(user=user).order_by("kind"), lambda opt_out: opt_out.kind),
        ),
        ("sign_ins", records(SignIn.objects.filter(user=user).order_by("at", "pk"), _sign_in)),
    ]


def _profile(user):
    return {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "language": user.language,
        "time_zone": user.time_zone,
        "joined_at": user.date_joined,
        "last_sign_in_at": user.last_login,
        "erased_at": user.erased_at,
        "email_addresses": [
            {"email": address.email, "verified": address.verified, "primary": address.primary}
            for address in EmailAddress.objects.filter(user=user).order_by("pk")
        ],
        # Which second factors are on; never their secrets.
        "two_factor_methods": sorted(Authenticator.objects.filter(user=user).values_list("type", flat=True)),
    }


def _alert(alert):
    return {
        "kind": alert.kind,
        "title": alert.title,
        "body": alert.body,
        "link": alert.link,
        "created_at": alert.created_at,
        "read_at": alert.read_at,
        "resolved_at": alert.resolved_at,
        "email": alert.email_status,
    }


def _sign_in(sign_in):
    return {"at": sign_in.at, "ip_address": sign_in.ip_address, "browser": sign_in.user_agent}


class _ExportEncoder(json.JSONEncoder):
    """Times in ISO 8601 with their offset, in the active (the student's) time zone."""

    def default(self, value):
        if isinstance(value, datetime):
            return iso_datetime(value)
        if isinstance(value, date):
            return iso_date(value)
        return super().default(value)


def _json_write(out, sections):
    """One JSON object of `sections` (name, record or iterator of records), written a record at a
    time."""

    def dumped(value):
        return json.dumps(value, cls=_ExportEncoder, ensure_ascii=False)

    out.write("{")
    for number, (name, content) in enumerate(sections):
        out.write(f"{',' if number else ''}\n{dumped(name)}: ")
        if content is None or isinstance(content, dict):
            out.write(dumped(content))
            continue
        out.write("[")
        for index, record in enumerate(content):
            out.write(f"{',' if index else ''}\n  {dumped(record)}")
        out.write("]")
    out.write("\n}\n")
