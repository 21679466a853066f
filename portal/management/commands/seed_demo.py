from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.demo import seed_demo


class Command(BaseCommand):
    help = "Create demo plans, students with months of history and demo staff (idempotent; development only)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--not-production",
            action="store_true",
            help="Seed although DEBUG is off (a test or a throwaway database): the demo staff have a published "
            "password and two-factor secret.",
        )

    def handle(self, *args, **options):
        if not (settings.DEBUG or options["not_production"]):
            raise CommandError(
                "The demo staff have a published password and two-factor secret: seed only with DEBUG=1, "
                "or pass --not-production for a throwaway database."
            )
        logins = seed_demo()
        self.stdout.write(self.style.SUCCESS("Demo logins:"))
        for login in logins:
            self.stdout.write(f"  {login.email:<28} {login.password:<18} {login.role}")
