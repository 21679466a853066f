from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing and hours"

    def ready(self):
        # The task module connects billing.background's jobs to their Huey tasks: web processes
        # enqueue through them too, not only the consumer (which also finds tasks on its own).
        from billing import tasks  # noqa: F401
