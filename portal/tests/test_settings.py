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
