from django.core.management.base import BaseCommand

from portal.demo import seed_demo


class Command(BaseCommand):
    help = "Create demo plans, students with months of history and a staff user (idempotent)."

    def handle(self, *args, **options):
        logins = seed_demo()
        self.stdout.write(self.style.SUCCESS("Demo logins:"))
        for login in logins:
            self.stdout.write(f"  {login.email:<28} {login.password:<18} {login.role}")
