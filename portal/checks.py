"""System checks that refuse a Stripe key in the wrong kind of site: live money on a debugging site,
or a production site taking test payments. Registered in PortalConfig.ready.

portal.E001 runs with every check (runserver, migrate, `manage.py check`); portal.E002 only with
`manage.py check --deploy`, since a production-like site on test keys is what a staging site is: it
silences it with SILENCED_SYSTEM_CHECKS=portal.E002.
"""

from django.conf import settings
from django.core.checks import Error, Tags, register

LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")


def stripe_live_key_with_debug(app_configs=None, **kwargs):
    if settings.DEBUG and settings.STRIPE_SECRET_KEY.startswith(LIVE_KEY_PREFIXES):
        return [
            Error(
                "STRIPE_SECRET_KEY is a live key and DEBUG is on.",
                hint="A debugging site shows tracebacks and settings to anyone; use a test key, or turn DEBUG off.",
                id="portal.E001",
            )
        ]
    return []


def stripe_test_key_in_production(app_configs=None, **kwargs):
    if not settings.DEBUG and settings.STRIPE_SECRET_KEY.startswith(TEST_KEY_PREFIXES):
        return [
            Error(
                "STRIPE_SECRET_KEY is a test key and DEBUG is off: no payment here takes real money.",
                hint="Set the live key. A staging site on test keys adds portal.E002 to SILENCED_SYSTEM_CHECKS.",
                id="portal.E002",
            )
        ]
    return []


def checks_register():
    register(stripe_live_key_with_debug, Tags.security)
    register(stripe_test_key_in_production, Tags.security, deploy=True)
