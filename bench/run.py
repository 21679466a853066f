"""`make bench`: build the bench database, load the site under gunicorn with wrk, time the periodic
jobs in-process, print one table and write it to bench/results/latest.json.

Every page is reported as a ratio to GET /healthz measured in the same run (absolute times on a
shared machine are noise). See docs/deploy.md, section Benchmark, for what each target measures.

    python -m bench.run --scale small|full [--duration 10] [--connections 8] [--profile]
"""

import argparse
import cProfile
import http.client
import json
import os
import platform
import pstats
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.environment import BASE_DIR, BENCH_VAR, WEBHOOK_SECRET, bench_data_reset, bench_environment, django_setup
from bench.seed import LONG_HISTORY_EMAIL, SCALES, STAFF_EMAIL

RESULTS = Path(__file__).resolve().parent / "results"
WRK_SCRIPTS = Path(__file__).resolve().parent / "wrk"
WEBHOOK_PATH = "/billing/webhooks/stripe/"
WORKERS = 2
FILTERED_PAYMENTS = "status=succeeded&amount_min=100"
NOT_LOADED = {"requests": 0, "errors": 0, "note": "measured alone only"}


@dataclass
class Target:
    """One page (or endpoint) loaded over HTTP."""

    name: str
    path: str
    who: str = ""  # whose session: "student" (long history), "typical", "staff", or "" for none
    headers: dict = field(default_factory=dict)
    expect: str = ""  # text the answer must contain, so a redirect or a wrong page is never measured
    method: str = "GET"
    status: int = 200
    # A whole page view: the fragments the page loads at once (HTMX requests), each view requesting
    # the page and then these; req/s is then page views a second.
    also: tuple = ()
    # False for a heavy page a few people open now and then (Finance's exports): measured alone and
    # checked over HTTP, not loaded by 8 connections at once, which would only measure its queue.
    loaded: bool = True
    result: dict = field(default_factory=dict)


def targets_for(scale, receipt_id, live_etag, deep_links):
    deep, usage_page = scale.deep_page, scale.usage_page
    filtered = FILTERED_PAYMENTS
    last_month_end = date.today().replace(day=1) - timedelta(days=1)
    year_ago = (last_month_end.replace(day=1) - timedelta(days=334)).replace(day=1)
    return [
        Target("baseline: GET /healthz", "/healthz", expect="ok"),
        # For reference: the cheapest signed-in answer (session, user, one count), which every page pays.
        Target(
            "signed-in floor: alert bell fragment",
            "/alerts/bell/",
            "student",
            {"HX-Request": "true"},
            expect='id="alert-bell"',
        ),
        Target("student dashboard (long history)", "/", "student", expect='id="usage-table"'),
        Target("student dashboard (typical history)", "/", "typical", expect='id="usage-table"'),
        Target(
            "whole dashboard view (typical: page, banner with bell), views/s",
            "/",
            "typical",
            expect='id="usage-table"',
            also=("/alerts/banner/?bell=1",),
        ),
        # The dashboard's live-update poll when nothing changed: the answer every open tab gets.
        Target(
            "live poll, nothing changed (304)",
            "/live/",
            "student",
            {"HX-Request": "true", "If-None-Match": live_etag},
            status=304,
        ),
        Target(
            f"dashboard usage table, page {usage_page} (HTMX)",
            f"/?usage-page={usage_page}",
            "student",
            {"HX-Request": "true", "HX-Target": "usage-table"},
            expect=f'pager-status">Page {usage_page} of',
        ),
        Target("console overview", "/console/", "staff", expect="Revenue today"),
        Target("console payments, page 1", "/console/payments/", "staff", expect='pager-status">Page 1<'),
        # The deep pages as the pager links to them (page deep - 1's "Next": its key), and once by
        # number alone, as a typed or old link reaches it.
        Target(
            f"console payments, page {deep}",
            deep_links["unfiltered"],
            "staff",
            expect=f'pager-status">Page {deep}<',
        ),
        Target(
            f"console payments, page {deep} by number alone",
            f"/console/payments/?page={deep}",
            "staff",
            expect=f'pager-status">Page {deep}<',
        ),
        Target(
            "console payments filtered, page 1",
            f"/console/payments/?{filtered}",
            "staff",
            expect='pager-status">Page 1<',
        ),
        Target(
            f"console payments filtered, page {deep}",
            deep_links["filtered"],
            "staff",
            expect=f'pager-status">Page {deep}<',
        ),
        Target("stored receipt PDF download", f"/receipts/{receipt_id}/pdf/", "student", expect="%PDF"),
        Target("webhook intake (signed events)", WEBHOOK_PATH, method="POST"),
        # Issue 19's operations pages (the System page; Finance's exports, whose downloads are audited).
        Target("console system page", "/console/system/", "staff", expect='id="jobs-title"'),
        Target(
            "console exports: last month's summary",
            "/console/exports/",
            "staff",
            expect='id="summary-title"',
            loaded=False,
        ),
        Target(
            "console exports: the last 12 months' summary",
            f"/console/exports/?start={year_ago.isoformat()}&end={last_month_end.isoformat()}",
            "staff",
            expect='id="summary-title"',
            loaded=False,
        ),
        Target(
            "accounting export: last month's ledger movements (CSV)",
            "/console/exports/ledger.csv",
            "staff",
            expect="entry_id",
            loaded=False,
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per target (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before each (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process jobs into var/bench/")
    parser.add_argument("--markdown", metavar="RESULT", help="print a result file as docs/deploy.md's tables, and stop")
    args = parser.parse_args()
    if args.markdown:
        print(render_markdown(json.loads(Path(args.markdown).read_text())))
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run `make bench` (it installs Debian's wrk) or apt-get install wrk.")
    static_root = tempfile.mkdtemp(prefix="bench-static-")
    stub_port = free_port()
    env = bench_environment(
        secret_key=f"bench-{secrets.token_urlsafe(40)}",
        static_root=static_root,
        stripe_api_base=f"http://127.0.0.1:{stub_port}",
    )
    try:
        bench_data_reset(env["DATABASE_URL"])
        django_setup(env)
        Bench(args, SCALES[args.scale], stub_port).run()
    finally:
        shutil.rmtree(static_root, ignore_errors=True)


class Bench:
    def __init__(self, args, scale, stub_port):
        self.args, self.scale, self.stub_port = args, scale, stub_port
        self.started = time.monotonic()
        self.in_process = []
        self.report = {}

    def say(self, message):
        print(f"[{time.monotonic() - self.started:6.0f} s] {message}", flush=True)

    def run(self):
        from bench.seed import bench_database_build

        self.say(f"Building the {self.scale.name} bench database ({os.environ['DATABASE_URL'].split(':')[0]})")
        self.dataset = bench_database_build(self.scale, progress=self.say)
        self.say(f"Seeded in {self.dataset['seconds']} s; ledger verified in {self.dataset['verify_seconds']} s")
        self.collect_static()
        self.prepare()
        self.count_queries()
        self.load()
        self.jobs()
        self.write()

    # ---- preparing ------------------------------------------------------------------------------

    def collect_static(self):
        from django.core.management import call_command

        started = time.monotonic()
        call_command("collectstatic", interactive=False, verbosity=0)
        self.say(f"collectstatic (whitenoise manifest + compression) in {time.monotonic() - started:.1f} s")

    def prepare(self):
        """Sessions for the long-history student and the Finance staff member (with TOTP passed), and
        one stored receipt PDF to download."""
        from billing.models import Account, Receipt
        from billing.receipts import receipt_render
        from portal.models import User

        student = User.objects.get(email=LONG_HISTORY_EMAIL)
        staff = User.objects.get(email=STAFF_EMAIL)
        typical = typical_student()
        self.cookies = {
            "student": session_cookie(student),
            "typical": session_cookie(typical),
            "staff": session_cookie(staff, totp=True),
        }
        account = Account.objects.get(user=student)
        receipt = Receipt.objects.filter(account=account, kind=Receipt.Kind.RECEIPT).order_by("-issued_at").first()
        receipt_render(receipt=receipt)
        self.targets = targets_for(self.scale, receipt.pk, self.live_etag(), self.deep_links())

    def deep_links(self):
        """The console payments' deep page as the pager links to it: the "Next" link of the page before."""
        import html
        import re

        deep, filtered = self.scale.deep_page, FILTERED_PAYMENTS
        client = self.client_of("staff")
        links = {}
        for name, query in (("unfiltered", ""), ("filtered", f"{filtered}&")):
            page = client.get(f"/console/payments/?{query}page={deep - 1}").content.decode()
            # The pager's links are relative to the page: a query string.
            links[name] = "/console/payments/" + html.unescape(re.search(r'rel="next" href="([^"]+)"', page).group(1))
        return links

    def client_of(self, who):
        from django.conf import settings
        from django.test import Client

        client = Client(HTTP_HOST="127.0.0.1")
        client.cookies[settings.SESSION_COOKIE_NAME] = self.cookies[who]
        return client

    def live_etag(self):
        """The ETag the long-history student's dashboard gives its live-update poller."""
        import html
        import re

        page = self.client_of("student").get("/").content.decode()
        headers = re.search(r'id="live"[^>]*hx-headers="([^"]*)"', page).group(1)
        return json.loads(html.unescape(headers))["If-None-Match"]

    def headers_for(self, target):
        from django.conf import settings

        headers = dict(target.headers)
        if target.who:
            headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={self.cookies[target.who]}"
        return headers

    # ---- queries per request (in-process, Django's test client) ---------------------------------

    def count_queries(self, timed_requests=20):
        """In-process, through Django's test client with the same sessions: the queries one request
        makes (the second of two, so no first-use lookups count), and the median time of a request
        with nothing else running (its service time; under load, latency adds the queue)."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        client = Client(HTTP_HOST="127.0.0.1")
        for target in self.targets:
            headers = self.headers_for(target)
            cookie = headers.pop("Cookie", None)
            client.cookies.clear()
            if cookie:
                name, value = cookie.split("=", 1)
                client.cookies[name] = value
            counts, times = [], []
            for number in range(2 + timed_requests):
                with CaptureQueriesContext(connection) as captured:
                    started = time.perf_counter()
                    if target.method == "POST":
                        body, signature = webhook_event(f"evt_query{secrets.token_hex(8)}")
                        response = client.post(
                            target.path, body, content_type="application/json", headers={"Stripe-Signature": signature}
                        )
                    else:
                        response = client.get(target.path, headers=headers)
                        for fragment in target.also:
                            client.get(fragment, headers=headers | {"HX-Request": "true"})
                    content = b"".join(response) if response.streaming else response.content
                    elapsed = time.perf_counter() - started
                check_answer(target, response.status_code, content)
                if number < 2:
                    counts.append(len(captured))
                else:
                    times.append(elapsed)
            target.result["queries"] = counts[-1]
            target.result["service_ms"] = round(statistics.median(times) * 1000, 2)
            target.result["service_p95_ms"] = round(statistics.quantiles(times, n=20)[-1] * 1000, 2)
        counts = ", ".join(f"{target.name.split(':')[0]} {target.result['queries']}" for target in self.targets)
        self.say(f"Queries per request: {counts}")

    # ---- load over HTTP -------------------------------------------------------------------------

    def load(self):
        from django.db import connections

        connections.close_all()  # the site's workers are the only ones using the database now
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        log = open(BENCH_VAR / "gunicorn.log", "w")  # noqa: SIM115 - open for the server's whole life
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [str(gunicorn), "portal.wsgi:application", f"--workers={WORKERS}", f"--bind=127.0.0.1:{port}"]
        command.append("--no-control-socket")  # gunicorn 27's default socket is one per user, shared with others
        server = subprocess.Popen(command, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_up(f"{self.base}/healthz", server)
            self.say(f"gunicorn up ({WORKERS} sync workers, pid {server.pid}); {self.args.duration} s per target")
            for target in self.targets:
                self.preflight(target)
            for target in self.targets:
                if not target.loaded:
                    target.result |= dict.fromkeys(("rps", "p50_ms", "p95_ms", "p99_ms")) | NOT_LOADED
                    self.say(f"  {target.name}: alone only, {target.result['service_ms']} ms")
                    continue
                if target.method == "POST":
                    self.load_webhook(target)
                elif target.also:
                    target.result |= self.wrk_views(target)
                else:
                    target.result |= self.wrk(target.path, self.headers_for(target))
                self.say(f"  {target.name}: {target.result['rps']:,.0f} req/s, p95 {target.result['p95_ms']} ms")
            end = Target("baseline again, at the end", "/healthz", expect="ok")
            end.result = self.wrk(end.path, {}) | {
                key: self.targets[0].result[key] for key in ("queries", "service_ms", "service_p95_ms")
            }
            self.targets.append(end)
        finally:
            stop(server)
            log.close()
        self.say("gunicorn stopped")

    def preflight(self, target):
        """One request over HTTP before loading: a redirect to sign in, or the wrong page, stops the run."""
        headers = self.headers_for(target)
        if target.method == "POST":
            body, signature = webhook_event(f"evt_preflight{secrets.token_hex(8)}")
            headers |= {"Content-Type": "application/json", "Stripe-Signature": signature}
            status, content = http_request(self.base, "POST", target.path, headers, body)
        else:
            status, content = http_request(self.base, "GET", target.path, headers)
        check_answer(target, status, content)

    def wrk(self, path, headers, script="get.lua", script_args=(), warmup=True):
        args = self.args
        command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", "--timeout", "10s"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        command += ["-s", str(WRK_SCRIPTS / script), f"{self.base}{path}"]
        if script_args:
            command += ["--", *script_args]
        if warmup and args.warmup:
            run_wrk([*command[:1], f"-d{args.warmup}s", *command[1:]])
        return run_wrk([*command[:1], f"-d{args.duration}s", *command[1:]])

    def wrk_views(self, target):
        """Whole page views (bench/wrk/view.lua): the page, then each fragment it loads, in turn;
        reported as views a second, with the latency of their requests."""
        result = self.wrk(target.path, self.headers_for(target), "view.lua", target.also)
        requests_per_view = 1 + len(target.also)
        result["rps"] = round(result["rps"] / requests_per_view, 1)
        result["note"] = f"{requests_per_view} requests a view; latency is of each request"
        return result

    def load_webhook(self, target):
        """Distinct events, signed just before the run (Stripe's 300 s tolerance); the Huey consumer
        is not running, so this is intake only: verify, store, queue, answer."""
        from billing.models import WebhookEvent

        baseline_rps = self.targets[0].result["rps"]
        needed = int(baseline_rps * self.args.duration * 1.3) + 2000
        warmup_file = BENCH_VAR / "webhook-warmup.events"
        events_file = BENCH_VAR / "webhook.events"
        write_events(warmup_file, "evt_warmup", int(baseline_rps * self.args.warmup * 1.3) + 500)
        run_wrk(
            [
                "wrk", f"-t{self.args.threads}", f"-c{self.args.connections}", f"-d{self.args.warmup}s", "--timeout",
                "10s", "-s", str(WRK_SCRIPTS / "webhook.lua"), f"{self.base}{target.path}", "--", str(warmup_file),
                str(self.args.threads),
            ]
        )  # fmt: skip
        write_events(events_file, "evt_load", needed)
        before = WebhookEvent.objects.filter(stripe_event_id__startswith="evt_load").count()
        result = self.wrk(target.path, {}, "webhook.lua", (str(events_file), str(self.args.threads)), warmup=False)
        stored = WebhookEvent.objects.filter(stripe_event_id__startswith="evt_load").count() - before
        warmup_file.unlink()
        events_file.unlink()
        result["distinct_events"] = needed
        result["events_stored"] = stored
        if result["requests"] > needed:
            result["note"] = f"{result['requests'] - needed} requests repeated an event (answered 200, not stored)"
        target.result |= result
        from django.db import connections

        connections.close_all()

    # ---- in-process jobs ------------------------------------------------------------------------

    def jobs(self):
        self.scans()
        self.reconciliation()
        self.receipt_renders()
        self.statement_renders()
        self.privacy_exports()
        self.ledger_check()
        self.retention()  # last: it deletes and empties what the others read

    def timed(self, name, function):
        profiler = cProfile.Profile() if self.args.profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        value = function()
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        if profiler:
            path = BENCH_VAR / f"profile-{name.replace(' ', '-')}.txt"
            with open(path, "w") as out:
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
            self.say(f"  profile: {path}")
        return value, seconds

    def scans(self):
        from alerts.notifications import alerts_scan
        from billing.ledger import lots_expire_due
        from billing.models import Lot

        lots = Lot.objects.count()
        due = Lot.objects.filter(expired_at__isnull=True, expires_at__lte=datetime.now(UTC)).count()
        for run in ("first run", "steady state"):
            entries, expiry_seconds = self.timed(f"expiry scan {run}", lots_expire_due)
            created, alert_seconds = self.timed(f"alert scan {run}", alerts_scan)
            self.in_process.append(
                {
                    "name": f"expiry + alert scans over {lots:,} lots ({run})",
                    "seconds": round(expiry_seconds + alert_seconds, 3),
                    "detail": f"expiry {expiry_seconds:.2f} s ({len(entries):,} entries booked"
                    + (f" from {due:,} due lots" if run == "first run" else "")
                    + f"), alerts {alert_seconds:.2f} s ({created:,} new)",
                    "lots": lots,
                }
            )
            self.say(f"  {self.in_process[-1]['name']}: {self.in_process[-1]['detail']}")

    def reconciliation(self):
        from billing.models import Payment
        from billing.payments import payments_reconcile

        in_flight = Payment.objects.filter(status__in=[Payment.Status.PROCESSING, Payment.Status.REQUIRES_ACTION])
        intents = {}
        for pk, status, intent_id, amount, currency, account_id, customer, created_at in in_flight.values_list(
            "pk", "status", "stripe_payment_intent_id", "amount_cents", "currency", "account_id",
            "account__stripe_customer_id", "created_at",
        ):  # fmt: skip
            if intent_id:
                # Stripe's side of it: most went through, one in five was declined, and 3-D Secure
                # left unfinished still waits (the job then cancels it).
                answer = "succeeded" if pk % 5 else "requires_payment_method"
                if status == Payment.Status.REQUIRES_ACTION:
                    answer = "requires_action"
                intents[intent_id] = {
                    "amount": amount, "currency": currency.lower(), "status": answer, "customer": customer,
                    "metadata": {"payment_id": str(pk), "account_id": str(account_id)},
                    "created": int(created_at.timestamp()),
                }  # fmt: skip
        count = in_flight.count()
        oldest = in_flight.order_by("created_at").values_list("created_at", flat=True).first()
        # Stripe lists every intent of the account, not only ours in flight: those of the payments
        # settled meanwhile are in the listing's time span too.
        settled_since = Payment.objects.filter(
            created_at__gte=oldest or datetime.now(UTC), stripe_payment_intent_id__isnull=False
        ).exclude(status__in=[Payment.Status.PROCESSING, Payment.Status.REQUIRES_ACTION])
        for pk, status, intent_id, amount, currency, account_id, customer, created_at in settled_since.values_list(
            "pk", "status", "stripe_payment_intent_id", "amount_cents", "currency", "account_id",
            "account__stripe_customer_id", "created_at",
        ):  # fmt: skip
            intents[intent_id] = {
                "amount": amount, "currency": currency.lower(), "customer": customer,
                "status": "requires_payment_method" if status == Payment.Status.FAILED else "succeeded",
                "metadata": {"payment_id": str(pk), "account_id": str(account_id)},
                "created": int(created_at.timestamp()),
            }  # fmt: skip
        intents_file = BENCH_VAR / "stub-intents.json"
        intents_file.write_text(json.dumps(intents))
        stub = subprocess.Popen(
            [sys.executable, "-m", "bench.stripe_stub", "--port", str(self.stub_port), "--intents", str(intents_file)],
            cwd=BASE_DIR,
            start_new_session=True,
        )
        stub_url = f"http://127.0.0.1:{self.stub_port}"
        try:
            wait_until_up(f"{stub_url}/_bench/calls", stub)
            settled, seconds = self.timed("reconciliation", payments_reconcile)
            status, answer = http_request(stub_url, "GET", "/_bench/calls", {})
            calls = json.loads(answer) if status == 200 else {}
        finally:
            stop(stub)
            intents_file.unlink(missing_ok=True)
        outcomes = {}
        for payment in settled:
            outcomes[payment.status] = outcomes.get(payment.status, 0) + 1
        kinds = ("list", "retrieve", "cancel", "search")
        described = {"list": "lists", "retrieve": "retrieves", "cancel": "cancels", "search": "searches by customer"}
        self.in_process.append(
            {
                "name": f"reconciliation over {count:,} in-flight payments",
                "seconds": round(seconds, 2),
                "detail": f"{seconds / max(count, 1) * 1000:.1f} ms a payment; "
                + ", ".join(f"{n:,} {status}" for status, n in sorted(outcomes.items()))
                + f"; {sum(calls.values()):,} Stripe calls ("
                + ", ".join(f"{calls.get(kind, 0):,} {described[kind]}" for kind in kinds)
                + f") to bench/stripe_stub.py over HTTP, which knows {len(intents):,} intents",
                "payments": count,
                "stripe_calls": {kind: calls.get(kind, 0) for kind in kinds},
            }
        )
        self.say(f"  {self.in_process[-1]['name']}: {seconds:.1f} s ({self.in_process[-1]['detail']})")

    def receipt_renders(self):
        import weasyprint  # noqa: F401 - its ~0.6 s import is not part of a render

        from billing.models import Receipt
        from billing.receipts import receipt_render

        receipts = list(Receipt.objects.filter(pdf="", kind=Receipt.Kind.RECEIPT).order_by("-id")[:51])
        times = []
        for receipt in receipts:
            started = time.perf_counter()
            receipt_render(receipt=receipt)
            times.append(time.perf_counter() - started)
        first, rest = times[0], times[1:]
        median = statistics.median(rest)
        self.in_process.append(
            {
                "name": f"receipt PDF render (median of {len(rest)})",
                "seconds": round(median, 4),
                "detail": f"{median * 1000:.0f} ms median, {max(rest) * 1000:.0f} ms max, first render "
                f"{first * 1000:.0f} ms (WeasyPrint, stored under MEDIA_ROOT)",
            }
        )
        self.say(f"  {self.in_process[-1]['name']}: {self.in_process[-1]['detail']}")

    def statement_renders(self, movements=2000):
        """A statement of `movements` lines (the long-history student's latest), built from the ledger
        and rendered as a PDF (median of 3) and as CSV: the budget is 2 s for build + PDF."""
        import weasyprint  # noqa: F401 - its ~0.6 s import is not part of a render

        row, statement = statement_render_times(LONG_HISTORY_EMAIL, movements, self.timed)
        self.in_process.append(row)
        self.say(f"  {row['name']}: {row['detail']}")
        return statement

    def privacy_exports(self):
        """The long-history student's copy of their data (a ZIP of JSON and every receipt's PDF), as
        they or staff download it: first while the seeded receipts have no PDF yet (each rendered for
        it, as render_missing_receipts would have done long before in production), then again."""
        from billing.models import Account, Receipt
        from portal.privacy import privacy_export

        account = Account.objects.select_related("user").get(user__email=LONG_HISTORY_EMAIL)
        documents = Receipt.objects.filter(account=account).count()
        unrendered = Receipt.objects.filter(account=account, pdf="").count()
        sizes, seconds = [], []
        for run in ("first", "again"):
            archive, elapsed = self.timed(f"privacy export {run}", lambda: privacy_export(account=account))
            sizes.append(archive.seek(0, os.SEEK_END))
            archive.close()
            seconds.append(elapsed)
        self.in_process.append(
            {
                "name": "privacy export of the long-history student (ZIP), PDFs stored",
                "seconds": round(seconds[1], 3),
                "detail": f"{documents:,} documents, {sizes[1] // 1024:,} KiB; the first export, which rendered "
                f"{unrendered:,} PDFs never rendered, took {seconds[0]:.1f} s",
            }
        )
        self.say(f"  {self.in_process[-1]['name']}: {self.in_process[-1]['detail']}")

    def ledger_check(self):
        """The daily check_ledger job (manage.py ledger_check's one query) over every account."""
        from billing.models import Account
        from billing.selectors import accounts_out_of_balance

        drift, seconds = self.timed("ledger check", lambda: accounts_out_of_balance().count())
        self.in_process.append(
            {
                "name": f"ledger check over {Account.objects.count():,} accounts",
                "seconds": round(seconds, 3),
                "detail": f"{drift:,} out of balance",
            }
        )
        self.say(f"  {self.in_process[-1]['name']}: {seconds:.2f} s, {self.in_process[-1]['detail']}")

    def retention(self):
        """The daily retention job over the seeded history, then again (nothing left to do)."""
        from billing.models import WebhookEvent
        from portal.retention import retention_apply

        events = WebhookEvent.objects.count()
        first, first_seconds = self.timed("retention first run", retention_apply)
        again, again_seconds = self.timed("retention steady state", retention_apply)
        self.in_process.append(
            {
                "name": f"retention over {events:,} webhook events (first run)",
                "seconds": round(first_seconds, 3),
                "detail": f"{first.event_bodies_emptied:,} event bodies emptied, {first.sign_ins_deleted:,} "
                f"sign-ins and {first.read_alerts_deleted:,} read alerts deleted; again {again_seconds:.3f} s, "
                f"{again.event_bodies_emptied + again.sign_ins_deleted + again.read_alerts_deleted:,} changed",
            }
        )
        self.say(f"  {self.in_process[-1]['name']}: {first_seconds:.2f} s, {self.in_process[-1]['detail']}")

    # ---- the report -----------------------------------------------------------------------------

    def write(self):
        baseline = self.targets[0].result["rps"]
        http_rows = []
        for target in self.targets:
            result = target.result
            http_rows.append(
                {
                    "name": target.name,
                    "method": target.method,
                    "path": target.path,
                    "who": target.who,
                    "rps": result["rps"],
                    "p50_ms": result["p50_ms"],
                    "p95_ms": result["p95_ms"],
                    "p99_ms": result["p99_ms"],
                    "ratio": round(result["rps"] / baseline, 3) if baseline and result["rps"] is not None else None,
                    "queries": result.get("queries"),
                    "service_ms": result.get("service_ms"),
                    "service_p95_ms": result.get("service_p95_ms"),
                    "requests": result["requests"],
                    "errors": result["errors"],
                }
                | {key: result[key] for key in ("distinct_events", "events_stored", "note") if key in result}
            )
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "scale": self.scale.name,
            "machine": machine_info(),
            "settings": {
                "gunicorn_workers": WORKERS,
                "connections": self.args.connections,
                "wrk": f"-t{self.args.threads} -c{self.args.connections} -d{self.args.duration}s "
                f"(after {self.args.warmup} s of warm-up)",
                "huey": "queue only: no consumer runs during the measures",
            },
            "dataset": self.dataset,
            "http": http_rows,
            "in_process": self.in_process,
        }
        report["targets"] = targets_check(report, previous_results(report))
        report["total_seconds"] = round(time.monotonic() - self.started)
        RESULTS.mkdir(exist_ok=True)
        text = json.dumps(report, indent=2, default=str)
        (RESULTS / "latest.json").write_text(text)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        engine = report["machine"]["database"].split()[0].lower()
        (RESULTS / f"{stamp}-{self.scale.name}-{engine}.json").write_text(text)
        print()
        print(render_table(report))
        print(f"\nWritten to {RESULTS / 'latest.json'} ({report['total_seconds']} s in all)")


# ---- helpers --------------------------------------------------------------------------------------


def statement_render_times(email, movements, timed, renders=3):
    """Time a statement of at least `movements` lines of `email`'s account: its range ends today and
    starts as far back as those lines need. Returns the report's row and the statement."""
    import csv
    import io
    from datetime import timedelta

    from django.utils import timezone

    from billing.formatting import time_zone_of
    from billing.models import Account, LedgerEntry
    from billing.statements import statement_build, statement_csv_rows, statement_pdf

    account = Account.objects.select_related("user").get(user__email=email)
    zone = time_zone_of(account.user)
    end = timezone.localdate(timezone=zone)
    latest = LedgerEntry.objects.filter(account=account).order_by("-occurred_at", "-id")
    start = timezone.localtime(latest.values_list("occurred_at", flat=True)[movements - 1], zone).date()
    statement = statement_build(account=account, start=start, end=end)
    while len(statement.lines) < movements:  # a session drawn from two lots is one line
        start -= timedelta(days=7)
        statement = statement_build(account=account, start=start, end=end)
    statement, build_seconds = timed("statement build", lambda: statement_build(account=account, start=start, end=end))
    pdf_seconds = []
    for _ in range(renders):
        pdf, seconds = timed("statement PDF", lambda: statement_pdf(statement=statement))
        pdf_seconds.append(seconds)
    pdf_median = statistics.median(pdf_seconds)

    def csv_text():
        out = io.StringIO()
        csv.writer(out).writerows(statement_csv_rows(statement=statement))
        return out.getvalue()

    text, csv_seconds = timed("statement CSV", csv_text)
    row = {
        "name": f"statement of {len(statement.lines):,} movements: build + PDF",
        "seconds": round(build_seconds + pdf_median, 3),
        "detail": f"build {build_seconds * 1000:.0f} ms (4 queries), PDF {pdf_median * 1000:.0f} ms median of "
        f"{renders} ({len(pdf) // 1024:,} KiB), "
        f"CSV {csv_seconds * 1000:.0f} ms ({len(text) // 1024:,} KiB); budget 2 s",
        "movements": len(statement.lines),
    }
    return row, statement


def session_cookie(user, *, totp=False):
    """A signed-in session stored in the bench database, as allauth leaves it after the password step
    (and, for staff, after the TOTP step, which the console checks)."""
    from importlib import import_module

    from allauth.account.internal.flows.login import record_authentication
    from allauth.mfa.models import Authenticator
    from django.conf import settings
    from django.contrib.auth import login
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    login(request, user, backend="portal.auth_backends.AccountAuthenticationBackend")
    record_authentication(request, user, "password", email=user.email)
    if totp:
        authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
        record_authentication(request, user, "mfa", type="totp", id=authenticator.pk)
    request.session.save()
    return request.session.session_key


def typical_student():
    """A student with the median number of packages (the long-history student aside)."""
    from django.db.models import Count

    from billing.models import Account
    from portal.models import User

    accounts = Account.objects.exclude(user__email=LONG_HISTORY_EMAIL).annotate(lots_count=Count("lots"))
    counts = sorted(accounts.values_list("lots_count", flat=True))
    median = counts[len(counts) // 2]
    return User.objects.get(account=accounts.filter(lots_count=median).order_by("pk").first())


def webhook_event(event_id, created=None):
    """A signed payment_intent.succeeded event about an intent we do not know (intake treats every
    type alike; the consumer would later mark it ignored)."""
    from billing import samples

    intent = {
        "id": f"pi_{event_id[4:]}",
        "object": "payment_intent",
        "amount": 15000,
        "currency": "eur",
        "status": "succeeded",
        "customer": "cus_elsewhere",
        "payment_method": "pm_elsewhere",
        "metadata": {},
    }
    body = samples.body(samples.event("payment_intent.succeeded", intent, event_id=event_id, created=created))
    return body, samples.signature_header(body, WEBHOOK_SECRET)


def write_events(path, prefix, count):
    now = int(time.time())
    with open(path, "wb") as out:
        for number in range(count):
            body, signature = webhook_event(f"{prefix}{number:08d}_{secrets.token_hex(4)}", created=now)
            out.write(signature.encode() + b"\n" + body + b"\n")


def check_answer(target, status, content):
    if status != target.status or target.expect.encode() not in content:
        raise RuntimeError(
            f"{target.name}: {target.method} {target.path} answered {status} without {target.expect!r}; "
            "the benchmark would measure the wrong thing. First bytes: " + content[:300].decode(errors="replace")
        )


def http_request(base, method, path, headers, body=None):
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def run_wrk(command):
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((line for line in finished.stdout.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if finished.returncode or line is None:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stdout[-500:]} {finished.stderr[-500:]}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    latency = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(latency["p50"] / 1000, 2),
        "p90_ms": round(latency["p90"] / 1000, 2),
        "p95_ms": round(latency["p95"] / 1000, 2),
        "p99_ms": round(latency["p99"] / 1000, 2),
        "max_ms": round(latency["max"] / 1000, 2),
        "errors": sum(raw["errors"].values()),
        "error_kinds": {kind: n for kind, n in raw["errors"].items() if n},
    }


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url, process, timeout=60):
    deadline = time.monotonic() + timeout
    base, path = url.split("/", 3)[2], "/" + url.split("/", 3)[3]
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode} (see {BENCH_VAR}/gunicorn.log)")
        try:
            status, _ = http_request(f"http://{base}", "GET", path, {})
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def stop(process):
    """Stop a server this run started (its own process group: gunicorn's master and workers)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def machine_info():
    import django
    from django.db import connection

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    if connection.vendor == "sqlite":
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    else:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0]}"
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BASE_DIR)
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=BASE_DIR
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "database": database,
        "huey": "RedisHuey" if os.environ.get("REDIS_URL") else "SqliteHuey",
        "wrk": wrk_version.split(" Copyright")[0],
        "commit": commit.stdout.strip() + (" with uncommitted changes" if changed.stdout.strip() else ""),
    }


def previous_results(report):
    """The latest earlier result at another scale on the same database engine, to compare queries."""
    engine = report["machine"]["database"].split()[0].lower()
    for path in sorted(RESULTS.glob(f"*-*-{engine}.json"), reverse=True):
        try:
            earlier = json.loads(path.read_text())
        except ValueError:
            continue
        if earlier.get("scale") != report["scale"]:
            return earlier
    return None


# Issue 17's goals, as the bench prints them ("x baseline"): the row, and the least ratio it must reach.
RATIO_GOALS = (
    ("student dashboard (typical history)", 0.08),
    ("student dashboard (long history)", 0.07),
    ("whole dashboard view (typical: page, banner with bell), views/s", 0.05),
    ("live poll, nothing changed (304)", 0.12),
    ("console overview", 0.05),
    ("console payments, page 1", 0.06),
    ("console payments filtered, page 1", 0.05),
    ("webhook intake (signed events)", 0.2),
)
# A deep page's latency under load (p50) may be at most this many times its first page's.
DEEP_PAGE_LATENCY = 1.5
STUDENT_PAGE_QUERIES = 8


def targets_check(report, earlier):
    """The product's targets, each met, missed or not measured at this scale."""
    rows = {row["name"]: row for row in report["http"]}
    checks = [
        {
            "target": f"{name} >= {goal} x baseline",
            "value": f"{rows[name]['ratio']:.3f}",
            "met": rows[name]["ratio"] >= goal,
        }
        for name, goal in RATIO_GOALS
    ]
    usage = next(row for row in report["http"] if row["name"].startswith("dashboard usage table"))
    checks.append(
        {
            "target": f"{usage['name']} >= 0.08 x baseline",
            "value": f"{usage['ratio']:.3f}",
            "met": usage["ratio"] >= 0.08,
        }
    )
    for first_name in ("console payments, page 1", "console payments filtered, page 1"):
        first = rows[first_name]
        prefix = first_name.removesuffix("page 1")
        for deep in (row for row in report["http"] if row["name"].startswith(prefix) and row is not first):
            if not deep["name"].removeprefix(prefix).startswith("page "):
                continue
            checks.append(
                {
                    "target": f"{deep['name']}: p50 within {DEEP_PAGE_LATENCY}x of page 1's",
                    "value": f"{deep['p50_ms']:.1f} ms vs {first['p50_ms']:.1f} ms "
                    f"({deep['p50_ms'] / first['p50_ms']:.2f}x; "
                    f"alone {deep['service_ms']:.1f} vs {first['service_ms']:.1f} ms)",
                    "met": deep["p50_ms"] <= DEEP_PAGE_LATENCY * first["p50_ms"],
                }
            )
    student_pages = [row for row in report["http"] if row["who"] in ("student", "typical")]
    most = max(student_pages, key=lambda row: row["queries"])
    checks.append(
        {
            "target": f"<= {STUDENT_PAGE_QUERIES} queries on every student page",
            "value": f"at most {most['queries']} ({most['name']})",
            "met": most["queries"] <= STUDENT_PAGE_QUERIES,
        }
    )
    scans = next(row for row in report["in_process"] if row["name"].startswith("expiry + alert scans"))
    checks.append(
        {
            "target": "expiry + alert scans over 100,000 lots < 5 s",
            "value": f"{scans['seconds']:.2f} s over {scans['lots']:,} lots",
            "met": scans["seconds"] < 5 if scans["lots"] >= 100_000 else None,
        }
    )
    statement = next(row for row in report["in_process"] if row["name"].startswith("statement of"))
    checks.append(
        {
            "target": "a statement of 2,000 movements: build + PDF < 2 s",
            "value": f"{statement['seconds']:.2f} s for {statement['movements']:,} movements",
            "met": statement["seconds"] < 2 if statement["movements"] >= 2000 else None,
        }
    )
    if earlier:
        before = {row["name"]: row["queries"] for row in earlier["http"]}
        changed = [
            f"{row['name']}: {before[row['name']]} -> {row['queries']}"
            for row in report["http"]
            if row["name"] in before and before[row["name"]] != row["queries"]
        ]
        compared = sum(row["name"] in before for row in report["http"])
        checks.append(
            {
                "target": "queries per request constant in data size",
                "value": f"same as the {earlier['scale']} run of {earlier['date']} on {compared} pages"
                if not changed
                else "; ".join(changed),
                "met": not changed,
            }
        )
    else:
        checks.append(
            {
                "target": "queries per request constant in data size",
                "value": "run the other scale once to compare",
                "met": None,
            }
        )
    return checks


def render_table(report):
    data = report["dataset"]
    lines = [
        f"Benchmark, {report['scale']} scale, {report['date']}: {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores, Python {report['machine']['python']}, {report['machine']['database']}, "
        f"{report['machine']['huey']}",
        f"Data: {data['students']:,} students, {data['rows_billing_ledgerentry']:,} ledger entries, "
        f"{data['rows_billing_lot']:,} lots, {data['rows_billing_payment']:,} payments, "
        f"{data['rows_billing_webhookevent']:,} webhook events; the long-history student has "
        f"{data['long_history_sessions']:,} sessions. Load: {report['settings']['wrk']}, "
        f"gunicorn {report['settings']['gunicorn_workers']} sync workers.",
        "",
        f"{'target':<44} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'x baseline':>10} {'queries':>8} "
        f"{'alone ms':>9}",
    ]
    for row in report["http"]:
        errors = f"  ({row['errors']} errors)" if row["errors"] else ""
        lines.append(
            f"{row['name']:<44} {_figure(row['rps'], ',.0f'):>8} {_figure(row['p50_ms'], '.1f'):>8} "
            f"{_figure(row['p95_ms'], '.1f'):>8} {_figure(row['p99_ms'], '.1f'):>8} {_figure(row['ratio'], '.3f'):>10} "
            f"{row['queries']:>8} {row['service_ms']:>9.1f}{errors}"
        )
    lines += ["", f"{'in-process':<60} {'seconds':>9}"]
    for row in report["in_process"]:
        lines.append(f"{row['name']:<60} {row['seconds']:>9.3f}  {row['detail']}")
    lines += ["", "targets"]
    for check in report["targets"]:
        mark = {True: "met    ", False: "MISSED ", None: "n/a    "}[check["met"]]
        lines.append(f"  {mark} {check['target']}: {check['value']}")
    return "\n".join(lines)


def render_markdown(report):
    """The result as docs/deploy.md shows it: the machine, the HTTP table, the in-process table."""
    machine, data = report["machine"], report["dataset"]
    lines = [
        f"{report['scale'].capitalize()} scale, {report['date'][:10]}, commit {machine['commit']}: {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['memory_gib']} GiB, Python {machine['python']}, "
        f"Django {machine['django']}, "
        f"{machine['database']}, {machine['huey']}; {report['settings']['wrk']}; gunicorn "
        f"{report['settings']['gunicorn_workers']} sync workers. Data: {data['students']:,} students, "
        f"{data['rows_billing_ledgerentry']:,} ledger entries, {data['rows_billing_lot']:,} lots, "
        f"{data['rows_billing_payment']:,} payments, {data['rows_billing_webhookevent']:,} webhook events.",
        "",
        "| target | req/s | p50 ms | p95 ms | p99 ms | × baseline | queries | alone ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in report["http"]:
        lines.append(
            f"| {row['name']} | {_figure(row['rps'], ',.0f')} | {_figure(row['p50_ms'], '.1f')} | "
            f"{_figure(row['p95_ms'], '.1f')} | {_figure(row['p99_ms'], '.1f')} | {_figure(row['ratio'], '.3f')} | "
            f"{row['queries']} | {row['service_ms']:.1f} |"
        )
    lines += ["", "| in-process | seconds | detail |", "|---|--:|---|"]
    for row in report["in_process"]:
        lines.append(f"| {row['name']} | {row['seconds']:.3f} | {row['detail']} |")
    return "\n".join(lines)


def _figure(value, spec):
    """A measured figure as the tables show it; "—" for one not measured (a page not loaded)."""
    return "—" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
