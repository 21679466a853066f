"""Settings for the test suite: the production settings (DEBUG off, mandatory email verification),
minus what needs HTTPS or a collectstatic run, which a test server on plain HTTP cannot give."""

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-any-real-deployment-0123456789")
os.environ.setdefault("MFA_ENCRYPTION_KEYS", "xJzlHOXzzM8qiCelPzG9EmhgQrDeiKaRwl9hoiU-rvc=")
os.environ["DEBUG"] = "0"  # whatever the shell says: the suite tests the production configuration
if os.environ.get("REDIS_URL") and os.environ.get("PYTEST_XDIST_WORKER"):
    # Each pytest-xdist worker on its own Redis database: a test's cache.clear() (FLUSHDB) must not
    # empty the cache or the queue another worker's test is using. Set before the settings read it,
    # so that the processes a test starts (the scale-out cluster) inherit it.
    redis_url = urlsplit(os.environ["REDIS_URL"])
    worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    database = (int(redis_url.path.strip("/") or 0) + 1 + worker) % 16
    os.environ["REDIS_URL"] = urlunsplit(redis_url._replace(path=f"/{database}"))

from portal.settings import *  # noqa: E402,F403

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Hashing a password the production way costs ~0.3 s; tests sign in hundreds of times.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
HUEY["immediate"] = True  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: SQLite's busy timeout then serialises concurrent writers as
    # it does in production, instead of failing at once with "database table is locked".
    # One file per run, so two runs in one checkout never share it.
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
# Serve static files straight from the finders: tests never run collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# A fresh cache namespace per run, so counters such as allauth's rate limits never carry over
# from an earlier run sharing the same Redis.
CACHES["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"  # noqa: F405
STRIPE_WEBHOOK_SECRET = "whsec_test_portal"
# A code the tests compute just before a 30-second step ends may be checked just after it on a slow
# run (CI's PostgreSQL leg once failed so): accept the neighbouring step, as many deployments do.
MFA_TOTP_TOLERANCE = 1
# Receipts rendered by the tests go to a throwaway folder, never next to the development data.
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="portal-test-media-"))
