from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """Notifications to students: in-app inbox and email (models and rules arrive with issue 6)."""

    name = "alerts"
