"""Settings for the portal, read from the environment (12-factor).

Defaults are safe: DEBUG is off unless asked for, and with DEBUG off the secret key must come
from the environment and cookies, HSTS and the SSL redirect are on. `make run` sets DEBUG=1;
the tests use portal/settings_test.py (production settings minus HTTPS-only parts).
"""

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from portal.content_security import content_security_policy

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
    # The embedded defaults (SQLite database, SQLite Huey queue, media) keep their files here; a
    # configured deployment may run on a read-only file system.
    VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default):
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",  # django.contrib.admin behind the staff second factor
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "csp",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_filters",
    "django_htmx",
    "django_tables2",
    "template_partials",
    "huey.contrib.djhuey",
    "portal",
    "billing",
    "alerts",
]

MIDDLEWARE = [
    # First: its one line a request has the final status and the whole duration (portal/logs.py).
    "portal.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's language (Accept-Language, or the language cookie) for everyone...
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # ...then, once signed in, the language and time zone saved on the user.
    "portal.locale.UserLocaleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                # LANGUAGES as settings name them, each in itself (the header's chooser).
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.stripe",
            ],
        },
    },
]

# Database: DATABASE_URL (postgres://...) scales out; the embedded default is a SQLite file.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for the lock instead of failing at once ("database is locked") when the web
    # process and the Huey consumer write together.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Background jobs: RedisHuey when REDIS_URL is set, otherwise a SQLite file next to the database.
HUEY = {
    # Queues on one Redis are kept apart by name (e.g. the scale-out test's own consumers).
    "name": os.environ.get("HUEY_NAME", "portal"),
    "immediate": env_bool("HUEY_IMMEDIATE", False),
    "utc": True,
    # Idle workers poll the queue at most every 2 s, so a webhook is applied within seconds.
    "consumer": {
        "workers": int(os.environ.get("HUEY_WORKERS", "2")),
        "worker_type": "thread",
        "initial_delay": 0.1,
        "max_delay": 2.0,
        # A consumer killed mid-job never releases its job lock; every job is safe to run twice,
        # so a starting consumer clears them rather than leaving a periodic job stopped for good.
        "flush_locks": True,
    },
}
if REDIS_URL:
    HUEY |= {"huey_class": "huey.RedisHuey", "url": REDIS_URL}
else:
    HUEY |= {"huey_class": "huey.SqliteHuey", "filename": str(VAR_DIR / "huey.sqlite3")}
# Every run of a periodic job is recorded (billing.models.JobRun, the console's System page); a job's
# runs older than this are deleted as it runs again, its latest run always kept.
JOB_RUNS_KEEP_DAYS = int(os.environ.get("JOB_RUNS_KEEP_DAYS", "30"))

AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    # allauth's, reading the student's account with the user (one query fewer on every page).
    "portal.auth_backends.AccountAuthenticationBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Sessions signed in before the backend above existed name this one.
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "student:dashboard"

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
# Mandatory outside development; dev may sign up without a mail round-trip.
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "optional" if DEBUG else "mandatory")
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
# allauth's own limits (sliding windows in the cache), spelled out so that docs/security.md can quote
# them: sign-in attempts and failures (a failed TOTP code counts as a failed sign-in of that user),
# sign-up, password reset, and the reauthentication step that asks staff for a fresh code.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "reauthenticate": "10/m/user",
}
# Ours (portal/ratelimits.py, django-ratelimit), per signed-in user and per address, on what calls
# Stripe: each card setup creates a SetupIntent, each refresh makes two Stripe calls. Failed webhook
# signatures are counted per address only (Stripe's own deliveries never fail one).
PORTAL_RATE_LIMITS = {
    "card_setup": {"user": "10/h", "ip": "30/h"},
    "card_save": {"user": "20/h", "ip": "60/h"},
    "card_change": {"user": "30/h", "ip": "100/h"},  # make default, remove: one Stripe call each
    "pay": {"user": "30/h", "ip": "100/h"},
    "payment_refresh": {"user": "30/m", "ip": "120/m"},
    "subscription_change": {"user": "30/h", "ip": "100/h"},  # cancel, resume, change card: one Stripe call each
    "webhook_bad_signature": {"ip": "60/h"},
    # A copy of all of one's data (portal/privacy.py) reads every record and receipt: a few an hour.
    "privacy_export": {"user": "5/h", "ip": "20/h"},
}
# Behind a load balancer REMOTE_ADDR is the balancer: with TRUSTED_PROXY_COUNT proxies in front, every
# per-address limit (allauth's and ours) and the audit log read the client's address from the
# X-Forwarded-For entry the outermost proxy added (portal.ratelimits.client_address).
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
RATELIMIT_IP_META_KEY = "portal.ratelimits.client_address"
# Two-factor authentication: staff must use TOTP before the console opens (students may too).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = os.environ.get("MFA_TOTP_ISSUER", "Tutoring Hours")
# A Finance action (refund, adjustment, block...) needs a TOTP code given within this many minutes.
CONSOLE_FINANCE_REAUTH_MINUTES = int(os.environ.get("CONSOLE_FINANCE_REAUTH_MINUTES", "15"))
# TOTP secrets and recovery seeds are sealed at rest (portal/mfa.py) under keys of their own, never
# SECRET_KEY: comma-separated Fernet keys, the first seals, all open (rotation: docs/security.md).
MFA_ADAPTER = "portal.mfa.MFAAdapter"
MFA_ENCRYPTION_KEYS = env_list("MFA_ENCRYPTION_KEYS", [])
if not MFA_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("MFA_ENCRYPTION_KEYS must be set when DEBUG is off (docs/security.md).")
    MFA_ENCRYPTION_KEYS = ["ZGV2LW9ubHktaW5zZWN1cmUtbWZhLWtleS0wMDAwMDA="]  # development only
for _key in MFA_ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured("MFA_ENCRYPTION_KEYS holds a value that is not a Fernet key.") from None
if SECRET_KEY in MFA_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("MFA_ENCRYPTION_KEYS must not hold SECRET_KEY: second factors need a key of their own.")

# Email: console in development, SMTP otherwise.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# A hung mail server must never hold a Huey worker for ever.
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Tutoring Hours <hours@example.com>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Stripe. STRIPE_API_BASE unset means the real Stripe API; dev and tests point it at localstripe.
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL", "https://js.stripe.com/v3/")
# Fixed at start from STRIPE_JS_URL (the tests' localstripe fixture recomputes it with that URL).
CONTENT_SECURITY_POLICY = content_security_policy(stripe_js_url=STRIPE_JS_URL)
STRIPE_TIMEOUT_SECONDS = float(os.environ.get("STRIPE_TIMEOUT_SECONDS", "20"))
# Retries resend the same Idempotency-Key, which real Stripe deduplicates; localstripe does not,
# so against the stand-in a retried charge could be a second charge: no retries there.
STRIPE_MAX_NETWORK_RETRIES = int(os.environ.get("STRIPE_MAX_NETWORK_RETRIES", "0" if STRIPE_API_BASE else "2"))
# Looking for a PaymentIntent whose id never reached us reads at most this many intents (pages of
# 100): against an API that cannot filter them by customer and date, the whole Stripe account's.
# Subscription prices: Stripe's Prices API. localstripe lacks it, so with a stand-in (STRIPE_API_BASE
# set) they are made through the legacy Plans API, whose plans are prices at Stripe too.
STRIPE_PRICES_API = os.environ.get("STRIPE_PRICES_API", "0" if STRIPE_API_BASE else "1") == "1"
STRIPE_PAYMENT_SEARCH_LIMIT = int(os.environ.get("STRIPE_PAYMENT_SEARCH_LIMIT", "1000"))

# Where the site lives, for links in emails.
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# How often the header's alert bell asks for the unread count.
ALERTS_BELL_POLL_SECONDS = int(os.environ.get("ALERTS_BELL_POLL_SECONDS", "60"))
# How often a visible student dashboard or console queue asks whether what it shows has changed
# (portal/live.py): an unchanged answer is a 304 from the account's version.
LIVE_POLL_SECONDS = int(os.environ.get("LIVE_POLL_SECONDS", "5"))

# The seller named on receipts.
PORTAL_SELLER_NAME = os.environ.get("PORTAL_SELLER_NAME", "Tutoring Hours GmbH")
PORTAL_SELLER_ADDRESS = os.environ.get("PORTAL_SELLER_ADDRESS", "Lernstraße 12, 10115 Berlin, Germany")
PORTAL_SELLER_TAX_ID = os.environ.get("PORTAL_SELLER_TAX_ID", "DE123456789")
PORTAL_SELLER_EMAIL = os.environ.get("PORTAL_SELLER_EMAIL", "billing@example.com")

# The product's business defaults.
PORTAL_CURRENCY = os.environ.get("PORTAL_CURRENCY", "EUR")
PORTAL_LOW_BALANCE_MINUTES = int(os.environ.get("PORTAL_LOW_BALANCE_MINUTES", "120"))
# How long after its expiry staff may still reopen a lot, and how long the minutes of a voided
# session stay usable when the lot they came from has expired since.
PORTAL_REOPEN_WINDOW_DAYS = int(os.environ.get("PORTAL_REOPEN_WINDOW_DAYS", "30"))

# Retention (portal/retention.py, daily at 04:00 UTC): how many days each kind of record is kept;
# 0 keeps it for ever. Sign-ins are the access evidence a chargeback is answered with, and card
# networks allow disputes for up to about a year after a payment. Read alerts are history the
# student has seen. A processed Stripe event's body (Stripe's copy of the customer, card or charge)
# helps staff look into a payment for a while; its id, type, PaymentIntent and outcome stay for good.
RETENTION_SIGN_IN_DAYS = int(os.environ.get("RETENTION_SIGN_IN_DAYS", "365"))
RETENTION_READ_ALERT_DAYS = int(os.environ.get("RETENTION_READ_ALERT_DAYS", "180"))
RETENTION_EVENT_BODY_DAYS = int(os.environ.get("RETENTION_EVENT_BODY_DAYS", "90"))

# Two languages: English (the default, and the fallback for anything unreadable in a cookie or a
# header) and European Portuguese. Catalogues live in locale/ (pt_PT); `make run` and `make test`
# compile them. Each person's language and time zone are saved on the user (portal.locale).
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("pt-pt", "Português")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The default time zone of people who have not chosen their own.
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

DJANGO_TABLES2_TEMPLATE = "django_tables2/portal_table.html"

# Production hardening: on whenever DEBUG is off, each overridable for a TLS-terminating proxy.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # load balancers check over plain HTTP
# E.g. "portal.E002" on a staging site that runs on Stripe test keys with DEBUG off (portal/checks.py).
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", [])
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Behind a proxy that terminates TLS, set USE_X_FORWARDED_PROTO=1 (or the SSL redirect loops) and
# CSRF_TRUSTED_ORIGINS to the public origin.
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Every line carries the request id (and the Huey task) it was written for, and is scrubbed of
# Stripe keys, client secrets and card numbers (portal/logs.py). LOG_FORMAT=json gives one JSON
# object a line for a log collector; plain reads better in a terminal.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "portal.logs.ContextFilter"}},
    "formatters": {
        "plain": {
            "()": "portal.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {
            "()": "portal.logs.JsonLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # The Huey consumer installs its own handler on "huey"; propagating would print every line twice.
        "huey": {"level": "INFO", "propagate": False},
        # Stripe's library logs whole request and response bodies (client secrets among them) at
        # DEBUG: never that, whatever LOG_LEVEL says.
        "stripe": {"level": "INFO"},
    },
}

# Error reporting, only when SENTRY_DSN is set: no personal data sent (send_default_pii off), each
# event tagged with its request id and scrubbed like the logs.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.huey import HueyIntegration

    from portal.logs import sentry_before_send

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
        release=os.environ.get("SENTRY_RELEASE") or None,
        integrations=[DjangoIntegration(), HueyIntegration()],
        send_default_pii=False,
        traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0")),
        before_send=sentry_before_send,
    )

# Fraud rules (billing/fraud.py): each raises a flag for staff, never blocks a payment by itself.
# A flag when an account makes more than this many payment attempts within one hour,
FRAUD_MAX_ATTEMPTS_PER_HOUR = int(os.environ.get("FRAUD_MAX_ATTEMPTS_PER_HOUR", "5"))
# pays with more than this many different saved cards within 24 hours,
FRAUD_MAX_CARDS_PER_DAY = int(os.environ.get("FRAUD_MAX_CARDS_PER_DAY", "3"))
# has this many card declines in a row (within 24 hours),
FRAUD_DECLINE_STREAK = int(os.environ.get("FRAUD_DECLINE_STREAK", "3"))
# starts more than this many card setups (SetupIntents, each a card tried with Stripe) within 24 hours,
FRAUD_MAX_CARD_SETUPS_PER_DAY = int(os.environ.get("FRAUD_MAX_CARD_SETUPS_PER_DAY", "5"))
# or makes a first purchase costing more than this many times the usual first purchase.
FRAUD_FIRST_PURCHASE_FACTOR = Decimal(os.environ.get("FRAUD_FIRST_PURCHASE_FACTOR", "3"))  # compared with cents
# How far back the periodic scan (every 10 minutes) looks for new payment attempts and outcomes.
FRAUD_SCAN_LOOKBACK_MINUTES = int(os.environ.get("FRAUD_SCAN_LOOKBACK_MINUTES", "60"))
