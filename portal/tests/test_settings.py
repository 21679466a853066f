"""Production settings are safe by default: `check --deploy` is clean and nothing runs without a key."""

import os
import subprocess
import sys

from django.conf import settings

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "k7#Qx!m2Zp9@vL4^wR8&nT1*yB6%cF3(hJ5)dG0_sA-eU+iO=oP[",
    "ALLOWED_HOSTS": "hours.example.com",
    "DATABASE_URL": "sqlite:////tmp/unused.sqlite3",
    "DJANGO_SETTINGS_MODULE": "portal.settings",
    "MFA_ENCRYPTION_KEYS": "O3Ew-yaGl3NUf1WwO9C15WnWrxPWhDETjDfRW8bzvho=",
}


def manage(*args, env):
    # Only what a production host would set: nothing of the test run's own environment leaks in.
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = PRODUCTION_ENV | {"SECRET_KEY": ""}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_refuses_to_start_without_a_key_for_second_factors():
    result = manage("check", env=PRODUCTION_ENV | {"MFA_ENCRYPTION_KEYS": ""})
    assert result.returncode != 0
    assert "MFA_ENCRYPTION_KEYS must be set when DEBUG is off" in result.stderr


def test_second_factors_never_share_the_secret_key():
    key = PRODUCTION_ENV["MFA_ENCRYPTION_KEYS"]
    result = manage("check", env=PRODUCTION_ENV | {"SECRET_KEY": key})
    assert result.returncode != 0
    assert "must not hold SECRET_KEY" in result.stderr


def test_a_malformed_key_for_second_factors_is_refused_at_start():
    result = manage("check", env=PRODUCTION_ENV | {"MFA_ENCRYPTION_KEYS": "not-a-fernet-key"})
    assert result.returncode != 0
    assert "not a Fernet key" in result.stderr


def test_production_pages_allow_only_our_origin_and_real_stripe_js():
    result = manage(
        "shell", "--no-imports", "-c", "from csp.utils import build_policy; print(build_policy())", env=PRODUCTION_ENV
    )

    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.strip().split("; ")) == [
        "base-uri 'self'",
        "connect-src 'self' https://api.stripe.com",
        "default-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com",
        "img-src 'self' data:",
        "object-src 'none'",
        "script-src 'self' https://js.stripe.com https://*.js.stripe.com",
        "style-src 'self'",
    ]
