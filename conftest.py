"""Fixtures shared by every test package."""

import shutil

import pytest
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import translation

from billing.tests.builders import PASSWORD, make_console_user, make_staff, make_student, totp_code
from billing.tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, LocalStripe
from portal.content_security import content_security_policy


@pytest.fixture
def student(db):
    return make_student("ana@example.com", first_name="Ana")


@pytest.fixture
def student_client(client, student):
    client.force_login(student.user)
    return client


@pytest.fixture
def staff_user(db):
    return make_staff()


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts in the default language: a request served in Portuguese leaves its language
    active in the thread (LocaleMiddleware, like Django's, activates and never deactivates)."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache (allauth remembers used TOTP codes and rate limits there)."""
    cache.clear()


def console_sign_in(client, user):
    """Sign a staff member in as they would: password, then the TOTP code (allauth.mfa)."""
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response["Location"] == reverse("mfa_authenticate"), "the password step should ask for the code"
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    assert response.status_code == 302, "the TOTP code should be accepted"
    return client


@pytest.fixture
def finance_user(db):
    return make_console_user("fiona.finance@example.com", role="Finance")


@pytest.fixture
def support_user(db):
    return make_console_user("sol.support@example.com", role="Support")


@pytest.fixture
def finance_client(client, finance_user):
    return console_sign_in(client, finance_user)


@pytest.fixture
def support_client(client, support_user):
    return console_sign_in(client, support_user)


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture(scope="session")
def localstripe_process():
    server = LocalStripe()
    yield server
    server.stop()


@pytest.fixture
def localstripe(localstripe_process, settings):
    """A real localstripe over HTTP, emptied for this test, with the portal pointed at it."""
    localstripe_process.reset()
    settings.STRIPE_API_BASE = localstripe_process.url
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_JS_URL = f"{localstripe_process.url}/js.stripe.com/v3/"
    settings.CONTENT_SECURITY_POLICY = content_security_policy(stripe_js_url=settings.STRIPE_JS_URL)
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_PRICES_API = False
    settings.STRIPE_TIMEOUT_SECONDS = 5
    return localstripe_process


@pytest.fixture(scope="session", autouse=True)
def throwaway_media():
    """Receipts the tests render live in a temporary folder (portal/settings_test.py): remove it."""
    yield
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
