"""A student with something of every kind of record a privacy request covers, made through the
services (payments and refunds against localstripe over HTTP): what the export tests read back and
the erasure tests see erased or kept."""

from dataclasses import dataclass

from allauth.mfa.totp.internal.auth import TOTP

from alerts.models import Notification
from billing import ledger, profiles, refunds, samples, topups
from billing.audit import audit_record
from billing.disputes.holds import dispute_record
from billing.models import Payment
from billing.tests.builders import TOTP_SECRET, make_paid_payment, make_plan, use, verified_user
from portal.models import SignIn

EMAIL = "ana.silva@example.com"
ADDRESS = "Rua Augusta 1, 1100-048 Lisboa"
NIF = "123456789"
SIGN_IN_ADDRESS = "203.0.113.7"
BROWSER = "Mozilla/5.0 (X11; Linux) Firefox/140.0"


@dataclass
class History:
    account: object
    payment: object
    refund: object
    dispute: object

    @property
    def user(self):
        return self.account.user


def student_with_history(localstripe, staff, *, email=EMAIL, first_name="Ana", last_name="Silva", dispute=True):
    """A student who can sign in (verified email, TOTP on), with billing details, a card and a
    Stripe customer at the stand-in, a paid package (receipt), a session, a refund (credit note),
    a closed dispute (unless `dispute` is False), automatic top-up on, an alert, a sign-in, and a
    staff action in the audit log that names them."""
    user = verified_user(email)
    user.first_name, user.last_name, user.language, user.time_zone = first_name, last_name, "pt-pt", "Europe/Lisbon"
    user.save()
    TOTP.activate(user, TOTP_SECRET)
    account = ledger.account_open(user=user)
    profiles.billing_details_save(
        account=account, first_name=first_name, last_name=last_name, billing_address=ADDRESS, tax_id=NIF
    )
    plan = make_plan("Standard", minutes=600, price_cents=15000, validity_days=90)
    payment = make_paid_payment(localstripe, account=account, plan=plan)
    use(account, 90)
    refund = refunds.refund_issue(
        payment=payment,
        amount_cents=1500,
        minutes=60,
        reason=f"{first_name} {last_name} asked on the phone",
        actor=staff,
    )
    closed = None
    if dispute:
        won = samples.dispute(payment, status="won", amount_cents=2000)
        closed = dispute_record(payment=payment, dispute_object=won, event_type="charge.dispute.closed")
    topups.auto_top_up_save(
        account=account,
        threshold_minutes=60,
        plan=plan,
        card=account.payment_methods.active().get(),
        monthly_count_cap=2,
        monthly_amount_cap_cents=30000,
        actor=user,
    )
    Notification.objects.create(
        recipient=user,
        kind=Notification.Kind.PAYMENT_SUCCEEDED,
        dedupe_key=f"payment-ok:{payment.pk}",
        title="Payment received",
        body=f"Thank you, {first_name}.",
        link=f"/lots/{payment.lot_id}/",
    )
    SignIn.objects.create(user=user, ip_address=SIGN_IN_ADDRESS, user_agent=BROWSER)
    audit_record(
        actor=staff,
        action="receipt.resend",
        target=payment.receipt,
        after={"to": email},
        reason=f"{first_name} lost the email",
    )
    account.refresh_from_db()
    return History(account=account, payment=Payment.objects.get(pk=payment.pk), refund=refund, dispute=closed)
