from django.core.management.base import BaseCommand
from django.db import transaction

from billing.models import Payment, Refund
from billing.receipts import credit_note_issue, receipt_issue


class Command(BaseCommand):
    help = "Issue the receipts and credit notes missing for payments and refunds settled before receipts existed."

    def handle(self, *args, **options):
        payments = Payment.objects.filter(status=Payment.Status.SUCCEEDED, receipt__isnull=True).order_by("settled_at")
        refunds = Refund.objects.filter(status=Refund.Status.SUCCEEDED, credit_note__isnull=True).order_by("created_at")
        issued = 0
        for payment in payments.select_related("plan", "payment_method", "lot", "account__user"):
            with transaction.atomic():
                receipt_issue(payment=payment)
            issued += 1
        for refund in refunds.select_related("payment__account__user", "payment__plan"):
            with transaction.atomic():
                credit_note_issue(refund=refund)
            issued += 1
        self.stdout.write(f"Issued {issued} missing document(s).")
