from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.demo import STAFF, demo_totp_code


class Command(BaseCommand):
    help = "Print the current two-factor code of the demo staff users (development only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("Only in development (DEBUG=1): real staff use their authenticator app.")
        self.stdout.write(f"Code for {', '.join(STAFF)}: {demo_totp_code()} (changes every 30 s)")
