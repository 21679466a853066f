"""Stripe's PaymentIntent endpoints, answered at once from a file: what the reconciliation job talks
to in the benchmark. localstripe cannot be used there: it would have to create the 10,000 in-flight
PaymentIntents first, one slow request each, and it cannot answer for intents created elsewhere.

Answers (shaped like Stripe's API reference): GET /v1/payment_intents/<id> from the file (404 for
an unknown id); POST /v1/payment_intents/<id>/cancel the same intent, canceled; GET
/v1/payment_intents (a search by metadata) an empty list. Runs as its own process, so it takes
no CPU time from the measured process's interpreter:

    python -m bench.stripe_stub --port 8421 --intents intents.json
"""

import argparse
import json
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

INTENT_PATH = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]+)(/cancel)?$")


def intent_object(intent_id, answer, status=None):
    status = status or answer["status"]
    declined = status == "requires_payment_method"
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": answer["amount"],
        "currency": answer["currency"],
        "status": status,
        "client_secret": f"{intent_id}_secret_bench",
        "customer": answer.get("customer"),
        "payment_method": answer.get("payment_method"),
        "metadata": answer.get("metadata", {}),
        "created": answer.get("created", int(time.time())),
        "livemode": False,
        "cancellation_reason": "abandoned" if status == "canceled" else None,
        "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}
        if declined
        else None,
    }


def serve(port, intents):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/v1/payment_intents":
                return self.answer(200, {"object": "list", "data": [], "has_more": False, "url": path})
            match = INTENT_PATH.match(path)
            if match and not match[2] and match[1] in intents:
                return self.answer(200, intent_object(match[1], intents[match[1]]))
            return self.missing(path)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urlsplit(self.path).path
            match = INTENT_PATH.match(path)
            if match and match[2] and match[1] in intents:
                return self.answer(200, intent_object(match[1], intents[match[1]], status="canceled"))
            return self.missing(path)

        def missing(self, path):
            error = {"type": "invalid_request_error", "code": "resource_missing", "message": f"No such object: {path}"}
            return self.answer(404, {"error": error})

        def answer(self, status, content):
            body = json.dumps(content).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", "req_bench")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--intents", required=True, help="JSON: {intent id: {amount, currency, status, ...}}")
    args = parser.parse_args()
    with open(args.intents) as file:
        intents = json.load(file)
    serve(args.port, intents)


if __name__ == "__main__":
    main()
