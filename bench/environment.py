"""Where the benchmark keeps its data and the production settings it runs under.

The benchmark wipes and rebuilds its database on every run, so it never points at the development
database: on SQLite it lives in var/bench/; a PostgreSQL DATABASE_URL must name a database with
"bench" in its name (e.g. postgres://postgres@127.0.0.1:5432/portal_bench), which it drops and
creates again.
"""

import os
import shutil
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_VAR = BASE_DIR / "var" / "bench"
SQLITE_PATH = BENCH_VAR / "bench.sqlite3"
WEBHOOK_SECRET = "whsec_bench_signing_secret"
# Any key: Stripe is never reached (the reconciliation talks to bench/stripe_stub.py).
STRIPE_SECRET_KEY = "sk_test_bench"


class BenchConfigError(Exception):
    """The environment would make the benchmark wipe a database that is not its own."""


def bench_database_url():
    """DATABASE_URL when it names a PostgreSQL bench database, else the bench's own SQLite file."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return f"sqlite:///{SQLITE_PATH}"
    config = dj_database_url.parse(url)
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise BenchConfigError("With DATABASE_URL set, the benchmark runs on PostgreSQL only.")
    if "bench" not in config["NAME"]:
        raise BenchConfigError(
            f"The benchmark drops and recreates its database, and {config['NAME']!r} does not look like a bench "
            "database: point DATABASE_URL at one with 'bench' in its name, e.g. "
            "postgres://postgres@127.0.0.1:5432/portal_bench"
        )
    return url


def bench_environment(*, secret_key, static_root, stripe_api_base, huey_name="bench"):
    """The process environment of the site under test: the production settings (DEBUG off, whitenoise's
    manifest storage, SMTP replaced by a dummy backend) over plain HTTP on 127.0.0.1."""
    return {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "0",
        "SECRET_KEY": secret_key,
        "MFA_ENCRYPTION_KEYS": "h85QBFM9QQPN-C2BUynCPLZv9Nw3kcIRXPGyLAcpjYk=",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "DATABASE_URL": bench_database_url(),
        "VAR_DIR": str(BENCH_VAR),
        "MEDIA_ROOT": str(BENCH_VAR / "media"),
        "STATIC_ROOT": str(static_root),
        "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": "pk_test_bench",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_api_base,
        # Its own queue, whose consumer never runs during the measures: webhook intake is measured
        # up to "queued", and receipts queued by the reconciliation are never rendered or emailed.
        "HUEY_NAME": huey_name,
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }


def bench_data_reset(database_url):
    """Start from nothing: a new empty database, no queue, no stored files."""
    config = dj_database_url.parse(database_url)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{config['NAME']}{suffix}").unlink(missing_ok=True)
    else:
        _postgres_recreate(config)
    (BENCH_VAR / "huey.sqlite3").unlink(missing_ok=True)
    shutil.rmtree(BENCH_VAR / "media", ignore_errors=True)
    BENCH_VAR.mkdir(parents=True, exist_ok=True)


def _postgres_recreate(config):
    import psycopg
    from psycopg import sql

    maintenance = psycopg.connect(
        dbname="postgres",
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        host=config.get("HOST") or None,
        port=config.get("PORT") or None,
        autocommit=True,
    )
    with maintenance:
        name = sql.Identifier(config["NAME"])
        maintenance.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        maintenance.execute(sql.SQL("CREATE DATABASE {}").format(name))


def django_setup(env):
    """Configure this process with `env` and set Django up (once)."""
    os.environ.update(env)
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
