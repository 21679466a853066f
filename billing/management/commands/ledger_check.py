from django.core.management.base import BaseCommand, CommandError

from billing.selectors import accounts_out_of_balance


class Command(BaseCommand):
    help = "Check every account's cached balance against its ledger entries and its lots."

    def handle(self, *args, **options):
        broken = list(accounts_out_of_balance())
        for account in broken:
            self.stderr.write(
                f"{account.user.email}: cached {account.balance_minutes} min, "
                f"ledger {account.ledger_minutes} min, lots {account.lots_minutes} min"
            )
        if broken:
            raise CommandError(f"{len(broken)} account(s) out of balance.")
        self.stdout.write("All accounts balance.")
