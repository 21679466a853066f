"""Record a tutoring session against a student's hours (what the staff console's form will do)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from alerts.notifications import session_record
from billing.errors import BillingError
from billing.ledger import account_open
from portal.models import User


class Command(BaseCommand):
    help = "Record a session for a student; a low-balance alert is raised at once if it is due."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("minutes", type=int)
        parser.add_argument("--tutor", default="Staff")
        parser.add_argument("--subject", default="Tutoring")

    def handle(self, *args, email, minutes, tutor, subject, **options):
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user {email}.")
        account = account_open(user=user)
        try:
            session_record(account=account, minutes=minutes, occurred_at=timezone.now(), tutor=tutor, subject=subject)
        except BillingError as refused:
            raise CommandError(str(refused)) from refused
        self.stdout.write(f"Recorded {minutes} min for {user.email}.")
