"""The system checks on the Stripe key (portal/checks.py): a live key with DEBUG on is refused by every
check run, a test key with DEBUG off by `check --deploy`; a staging site silences the second."""

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

LIVE = "sk_live_51HxQ2eAbCdEfGhIjKlMnOpQr"
TEST = "sk_test_51HxQ2eAbCdEfGhIjKlMnOpQr"


def check(*, deploy=False):
    call_command("check", deploy=deploy, fail_level="ERROR", stdout=None)


def refused(*, deploy=False):
    """The ids of our checks that refuse the site (others, such as Django's own async.E001 while the
    browser tests allow the ORM beside Playwright, are not this module's business)."""
    issues = run_checks(include_deployment_checks=deploy)
    return {issue.id for issue in issues if issue.id.startswith("portal.") and not issue.is_silenced()}


@pytest.mark.parametrize("key", [LIVE, "rk_live_51HxQ2eRestricted"])
def test_a_live_key_with_debug_on_is_refused_by_any_check(settings, key):
    settings.DEBUG, settings.STRIPE_SECRET_KEY = True, key

    with pytest.raises(SystemCheckError, match="portal.E001"):
        check()


def test_the_message_never_shows_the_key(settings):
    settings.DEBUG, settings.STRIPE_SECRET_KEY = True, LIVE

    with pytest.raises(SystemCheckError) as refused:
        check()

    assert LIVE not in str(refused.value) and "STRIPE_SECRET_KEY is a live key and DEBUG is on." in str(refused.value)


@pytest.mark.parametrize("key", [TEST, "rk_test_51HxQ2eRestricted"])
def test_a_test_key_with_debug_off_is_refused_by_the_deploy_check(settings, key):
    settings.DEBUG, settings.STRIPE_SECRET_KEY = False, key

    with pytest.raises(SystemCheckError, match="portal.E002"):
        check(deploy=True)


def test_a_test_key_with_debug_off_passes_the_everyday_check(settings):
    # What the test suite and the benchmark run as: production settings on test keys.
    settings.DEBUG, settings.STRIPE_SECRET_KEY = False, TEST

    assert refused() == set()


@pytest.mark.parametrize(("debug", "key"), [(True, TEST), (False, LIVE), (False, "")])
def test_the_right_key_for_the_site_passes_the_deploy_check(settings, debug, key):
    settings.DEBUG, settings.STRIPE_SECRET_KEY = debug, key

    assert refused(deploy=True) == set()


def test_a_staging_site_silences_the_test_key_check(settings):
    settings.DEBUG, settings.STRIPE_SECRET_KEY = False, TEST
    settings.SILENCED_SYSTEM_CHECKS = ["portal.E002"]

    assert refused(deploy=True) == set()
