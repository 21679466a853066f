"""Run the whole development stack in one terminal: the Stripe stand-in, the Huey consumer and
the web server. Ctrl-C stops every child process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings
from django.core.management.base import BaseCommand

LOCALSTRIPE_PORT = 8420


class Command(BaseCommand):
    help = "Start localstripe, the Huey consumer and runserver together (development only)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr, **options):
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        bin_dir = Path(sys.executable).parent
        commands = {
            # Without --from-scratch the stand-in reloads what it stored last time, so the demo's
            # saved cards survive a restart.
            "localstripe": [str(bin_dir / "localstripe"), "--port", str(LOCALSTRIPE_PORT)],
            "huey": [sys.executable, manage, "run_huey"],
            "web": [sys.executable, manage, "runserver", addr],
        }
        children = {}
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            for name, command in commands.items():
                children[name] = subprocess.Popen(command, env=os.environ.copy())
                self.stdout.write(f"started {name} (pid {children[name].pid})")
                if name == "localstripe":
                    _register_webhook(f"http://{addr}/billing/webhooks/stripe/")
                    self.stdout.write("localstripe delivers its events to the portal's webhook endpoint")
            self.stdout.write(self.style.SUCCESS(f"Portal running on http://{addr}/ — Ctrl-C stops everything."))
            while all(child.poll() is None for child in children.values()):
                time.sleep(0.5)
            stopped = [name for name, child in children.items() if child.poll() is not None]
            self.stderr.write(f"{', '.join(stopped)} stopped; shutting down the rest.")
        except KeyboardInterrupt:
            self.stdout.write("Stopping...")
        finally:
            _stop(children.values())


def _register_webhook(url):
    """Point the stand-in's webhooks at our endpoint (it forgets them at every start)."""
    stand_in = f"http://127.0.0.1:{LOCALSTRIPE_PORT}"
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.post(
                f"{stand_in}/_config/webhooks/portal",
                json={"url": url, "secret": settings.STRIPE_WEBHOOK_SECRET},
                timeout=2,
            ).raise_for_status()
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _interrupt(signum, frame):
    # `kill` stops the stack as cleanly as Ctrl-C does.
    raise KeyboardInterrupt


def _stop(children):
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
