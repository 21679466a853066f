from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from allauth.mfa.signals import authenticator_added
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_in
        from django.core.signals import request_finished
        from django.db.models.signals import post_delete, post_save
        from huey.contrib.djhuey import HUEY

        from billing.models import (
            Account,
            Dispute,
            FraudFlag,
            Payment,
            PaymentMethod,
            Plan,
            Refund,
            Subscription,
            WebhookEvent,
        )
        from billing.versions import console_version_renew
        from portal.checks import checks_register
        from portal.console.access import console_groups_ensure, totp_activation_counts_as_sign_in
        from portal.job_runs import job_runs_record
        from portal.locale import language_remember
        from portal.logs import huey_request_ids_connect, request_context_clear
        from portal.models import sign_in_record
        from portal.page_cache import plans_changed

        huey_request_ids_connect(HUEY)
        # The portal's periodic jobs (retention), known to web processes too, as billing's and the
        # alerts' are (the consumer would find them on its own).
        from portal import tasks  # noqa: F401

        job_runs_record(HUEY)
        checks_register()
        request_finished.connect(request_context_clear, dispatch_uid="request_context_clear")
        post_migrate.connect(console_groups_ensure, dispatch_uid="console_groups_ensure")
        user_logged_in.connect(sign_in_record, dispatch_uid="sign_in_record")
        user_logged_in.connect(language_remember, dispatch_uid="language_remember")
        authenticator_added.connect(totp_activation_counts_as_sign_in, dispatch_uid="totp_counts_as_sign_in")
        # The student's cached pages show the plans on sale (portal/page_cache.py).
        post_save.connect(plans_changed, sender=Plan, dispatch_uid="plans_changed_saved")
        post_delete.connect(plans_changed, sender=Plan, dispatch_uid="plans_changed_deleted")
        # The console's cached pages (payments, overview) show these rows: a save, wherever it is
        # made (an email change, the admin, a webhook's processing), renews the console's version.
        shown = (
            Account,
            Payment,
            PaymentMethod,
            get_user_model(),
            Refund,
            Dispute,
            FraudFlag,
            Subscription,
            WebhookEvent,
        )
        for model in shown:
            for signal in (post_save, post_delete):
                signal.connect(console_version_renew, sender=model, dispatch_uid=f"console_version_{model._meta.label}")


class PortalAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with our site (portal/admin_site.py) as admin.site."""

    default = False  # named in INSTALLED_APPS; PortalConfig stays this module's default
    default_site = "portal.admin_site.PortalAdminSite"
