"""Create (or find) the Stripe Product and Price of every subscription plan on sale, so that the
first subscriber does not wait for them; a plan whose price changed gets a new Price."""

from django.core.management.base import BaseCommand, CommandError

from billing.errors import BillingError
from billing.subscriptions import plans_price_sync


class Command(BaseCommand):
    help = "Create or find the Stripe Products and Prices of the subscription plans on sale."

    def handle(self, *args, **options):
        try:
            synced = plans_price_sync()
        except BillingError as error:
            raise CommandError(f"Stripe could not be reached or refused a request: {error}") from error
        for plan, price_id in synced:
            self.stdout.write(f"{plan.name} ({plan.price_terms}): Stripe price {price_id}")
        if not synced:
            self.stdout.write("No subscription plan is on sale.")
