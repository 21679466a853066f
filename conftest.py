"""Fixtures shared by every test package."""

import shutil

import pytest
from django.conf import settings

from billing.tests.builders import PASSWORD, make_staff, make_student
from billing.tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, LocalStripe


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
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_TIMEOUT_SECONDS = 5
    return localstripe_process


@pytest.fixture(scope="session", autouse=True)
def throwaway_media():
    """Receipts the tests render live in a temporary folder (portal/settings_test.py): remove it."""
    yield
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
