from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from allauth.mfa.signals import authenticator_added
        from django.contrib.auth.signals import user_logged_in

        from portal.console.access import console_groups_ensure, totp_activation_counts_as_sign_in
        from portal.models import sign_in_record

        post_migrate.connect(console_groups_ensure, dispatch_uid="console_groups_ensure")
        user_logged_in.connect(sign_in_record, dispatch_uid="sign_in_record")
        authenticator_added.connect(totp_activation_counts_as_sign_in, dispatch_uid="totp_counts_as_sign_in")
