"""Stripe behaviour that localstripe cannot show, faked at the HTTP boundary.

`LossyProxy` forwards requests to localstripe, except that for requests matching `drop_response`
it forwards the request (so Stripe acts on it) and then hangs up without answering: the classic
"charged, but the answer never reached us" failure. Requests matching a key of `canned` are not
forwarded; they get that (status, body), or what a callable makes of the request's parameters (a
POST's body, a GET's query string: Stripe form-encodes both alike), instead: real Stripe's answers
where the stand-in differs.
"""

import json
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import requests


class LossyProxy:
    def __init__(self, upstream, *, drop_response=r"^$", canned=None):
        self.upstream = upstream
        self.drop_response = re.compile(drop_response)
        self.canned = {re.compile(pattern): answer for pattern, answer in (canned or {}).items()}
        self.dropped = 0
        self.seen = []  # every request line ("GET /v1/...?query"), in the order they came
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.forward()

            def do_POST(self):
                self.forward()

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request_line = f"{self.command} {self.path}"
                proxy.seen.append(request_line)
                for pattern, canned in proxy.canned.items():
                    if pattern.search(request_line):
                        parameters = body if self.command == "POST" else urlsplit(self.path).query.encode()
                        status, canned_body = canned(parameters) if callable(canned) else canned
                        return self.answer(status, json.dumps(canned_body).encode())
                headers = {key: value for key, value in self.headers.items() if key.lower() != "host"}
                answer = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=10
                )
                if proxy.drop_response.search(f"{self.command} {self.path}"):
                    proxy.dropped += 1
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.answer(answer.status_code, answer.content)

            def answer(self, status, content):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def charge_answers_lost(localstripe, settings):
    """Inside this block Stripe still charges, but its answers to charge requests never reach us."""
    proxy = LossyProxy(localstripe.url, drop_response=r"^POST /v1/payment_intents$")
    settings.STRIPE_API_BASE = proxy.url
    try:
        yield proxy
    finally:
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url
