"""Stripe's PaymentIntent endpoints, answered at once from a file: what the reconciliation job talks
to in the benchmark. localstripe cannot be used there: it would have to create the 10,000 in-flight
PaymentIntents first, one slow request each, and it cannot answer for intents created elsewhere.

Answers (shaped like Stripe's API reference): GET /v1/payment_intents/<id> from the file (404 for
an unknown id); POST /v1/payment_intents/<id>/cancel the same intent, canceled; GET
/v1/payment_intents the list object of the file's intents, newest first, filtered as Stripe filters
by `customer` and `created[gte]`/`created[lte]`, `limit` (10 unless given, at most 100) a page and
the next page after `starting_after`. GET /_bench/calls counts the requests answered by kind
(retrieve, cancel, list, and search: a listing by customer). Runs as its own process, so it takes
no CPU time from the measured process's interpreter:

    python -m bench.stripe_stub --port 8421 --intents intents.json
"""

import argparse
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from urllib.parse import parse_qs, urlsplit

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


class Listing:
    """Stripe's listing over the file's intents: newest first (ties by id, so that pages never
    overlap), filtered by customer and creation time, a page after `starting_after`. Sorted once:
    a page costs its own length, not the file's."""

    def __init__(self, intents):
        now = int(time.time())
        self.intents = intents
        self.newest_first = sorted(
            ((answer.get("created", now), intent_id) for intent_id, answer in intents.items()), reverse=True
        )
        self.by_customer = {}
        for created, intent_id in self.newest_first:
            self.by_customer.setdefault(intents[intent_id].get("customer"), []).append((created, intent_id))
        self.position = {intent_id: n for n, (_, intent_id) in enumerate(self.newest_first)}

    def page(self, query):
        if "customer" in query:
            candidates = self.by_customer.get(query["customer"], [])
            positions = {intent_id: n for n, (_, intent_id) in enumerate(candidates)}
        else:
            candidates, positions = self.newest_first, self.position
        start = positions[query["starting_after"]] + 1 if query.get("starting_after") in positions else 0
        gte, lte = int(query.get("created[gte]", 0)), int(query.get("created[lte]", 2**62))
        limit = min(int(query.get("limit", 10)), 100)
        found = []
        for created, intent_id in islice(candidates, start, None):
            if created < gte or len(found) > limit:
                break
            if created <= lte:
                found.append(intent_id)
        data = [intent_object(intent_id, self.intents[intent_id]) for intent_id in found[:limit]]
        return {"object": "list", "data": data, "has_more": len(found) > limit, "url": "/v1/payment_intents"}


def serve(port, intents):
    listing = Listing(intents)
    calls = Counter()
    counting = threading.Lock()

    def count(kind):
        with counting:
            calls[kind] += 1

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: without this, a long answer (a page of 100 intents)
        # waits for the client's delayed ACK, 40 ms, between them.
        disable_nagle_algorithm = True

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/_bench/calls":
                return self.answer(200, dict(calls))
            if url.path == "/v1/payment_intents":
                query = {key: values[-1] for key, values in parse_qs(url.query).items()}
                count("search" if "customer" in query else "list")
                return self.answer(200, listing.page(query))
            match = INTENT_PATH.match(url.path)
            if match and not match[2] and match[1] in intents:
                count("retrieve")
                return self.answer(200, intent_object(match[1], intents[match[1]]))
            return self.missing(url.path)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urlsplit(self.path).path
            match = INTENT_PATH.match(path)
            if match and match[2] and match[1] in intents:
                count("cancel")
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
