from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """Notifications to students: in-app inbox and email (models and rules arrive with issue 6)."""

    name = "alerts"

    def ready(self):
        # The task module connects the billing.background jobs that the alerts run (as billing's
        # own tasks module does for billing's jobs), in web processes too.
        from alerts import tasks  # noqa: F401
