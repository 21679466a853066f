"""Staff's end of a payment left for review (Stripe charged another amount, or no answer could be
had): Finance records how it was resolved, with a reason, in the audit log. Money goes back
through billing.refunds (for what Stripe charged); hours, if staff add any, through an adjustment."""

from django.db import transaction
from django.utils.translation import gettext as _

from billing import ledger
from billing.audit import audit_reason, audit_record
from billing.errors import BillingError
from billing.models import Payment


class PaymentReviewRefused(BillingError):
    """Staff tried to resolve a payment that is not waiting for review; nothing was changed."""


def payment_review_resolve(*, payment, actor, reason, ip_address=None):
    """Mark a payment waiting for review as resolved (what was done and why is the audited reason).
    Its failure code and message stay, as the record of what was found."""
    reason = audit_reason(reason, _("Say how this payment was resolved; it is kept in the audit log."))
    with transaction.atomic():
        ledger.account_lock(account_id=payment.account_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.status != Payment.Status.NEEDS_REVIEW:
            raise PaymentReviewRefused(
                _("This payment is not waiting for review (it is %(status)s); nothing was changed.")
                % {"status": payment.get_status_display().lower()}
            )
        payment.status = Payment.Status.RESOLVED
        payment.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=actor,
            action="payment.resolve",
            target=payment,
            reason=reason,
            before={"status": Payment.Status.NEEDS_REVIEW, "failure_code": payment.failure_code},
            after={"status": payment.status},
            ip_address=ip_address,
        )
    return payment
