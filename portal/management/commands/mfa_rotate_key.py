from allauth.mfa.models import Authenticator
from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand

from portal.mfa import authenticators_reseal


class Command(BaseCommand):
    help = (
        "Re-seal every stored TOTP secret and recovery seed under the first key of MFA_ENCRYPTION_KEYS "
        "(the rotation step of docs/security.md). --generate prints a new key instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--generate", action="store_true", help="print a new Fernet key and change nothing")

    def handle(self, *args, generate=False, **options):
        if generate:
            self.stdout.write(Fernet.generate_key().decode())
            return
        changed = authenticators_reseal(Authenticator)
        self.stdout.write(f"Re-sealed {changed} authenticator(s) under the first key.")
