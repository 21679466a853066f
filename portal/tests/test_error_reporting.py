"""Error reporting to Sentry, only when SENTRY_DSN is set: tagged with the request id, scrubbed like
the logs. The DSN points at a local HTTP server standing in for Sentry's ingest endpoint."""

import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk
from django.conf import settings

REPORT = """
import django
django.setup()
import sentry_sdk
from portal.logs import RequestLogMiddleware
from django.test import RequestFactory

def failing_view(request):
    raise RuntimeError("charging 4242424242424242 with sk_test_portal failed")

print(sorted(sentry_sdk.get_client().integrations))
try:
    RequestLogMiddleware(failing_view)(RequestFactory().get("/", HTTP_X_REQUEST_ID="req-0123456789"))
except RuntimeError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=5)
"""


class Ingest(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":  # sentry-sdk's choice when brotli is installed (WeasyPrint's fonttools brings it)
            import brotli

            body = brotli.decompress(body)
        Ingest.received.append(body.decode())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sentry_ingest():
    Ingest.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_without_a_dsn_nothing_is_reported():
    assert not settings.SENTRY_DSN
    assert not sentry_sdk.get_client().is_active()


def test_with_a_dsn_an_error_reaches_sentry_tagged_and_scrubbed(sentry_ingest):
    port = sentry_ingest.server_address[1]
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "portal.settings_test",
        "SENTRY_DSN": f"http://key@127.0.0.1:{port}/1",
    }

    run = subprocess.run(
        [sys.executable, "-c", REPORT], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 0, run.stderr
    assert "'django'" in run.stdout and "'huey'" in run.stdout
    [envelope] = [body for body in Ingest.received if '"exception"' in body]
    event = json.loads(next(line for line in envelope.splitlines() if '"exception"' in line))
    assert event["tags"]["request_id"] == "req-0123456789"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert "4242424242424242" not in envelope and "sk_test_portal" not in envelope
