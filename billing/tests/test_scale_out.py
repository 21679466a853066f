"""Scale-out: two web processes and two Huey consumers on one PostgreSQL and one Redis.

A storm of signed webhook deliveries (every event several times, spread over both web processes)
and concurrent renewals through both; afterwards every effect exists exactly once: refunds and
their reversals, dispute holds, fraud flags, renewal payments and their lots, receipt and credit
note numbers without gaps, one "payment received" alert per renewal, and no event left behind.
Two sessions recorded at once by two processes, their checks run by the two consumers, make one
automatic top-up.

Runs in CI's PostgreSQL + Redis leg (skipped on the embedded SQLite default, where several
processes would only queue behind one file lock).
"""

import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.conf import settings
from django.db import connection

from alerts.models import Notification
from billing import samples
from billing.models import Dispute, FraudFlag, LedgerEntry, Lot, Payment, Receipt, Refund, WebhookEvent
from billing.payments import payment_token_issue
from billing.selectors import accounts_out_of_balance
from billing.tests.builders import add_card, credit, make_paid_payment, make_plan, make_student
from billing.tests.localstripe import SECRET_KEY as STRIPE_SECRET_KEY
from billing.tests.localstripe import free_port
from billing.topups import auto_top_up_save
from portal.tests.test_pay_concurrency import browser_session

pytestmark = [
    pytest.mark.skipif(
        not (os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")),
        reason="needs PostgreSQL and Redis (CI's second leg)",
    ),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
# Small enough that localstripe lists every PaymentIntent on one page (100), so a double charge shows.
PER_GROUP = 15  # paid payments refunded, disputed and flagged (each group its own payments)
RENEWING = 15  # students renewing through both web processes at once
DELIVERIES = 1000


def service_env(localstripe, static_root, media_root):
    """The production settings, pointed at the test database, this run's Redis queue and localstripe."""
    database = connection.settings_dict
    return (
        os.environ
        | {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DEBUG": "0",
            "SECRET_KEY": settings.SECRET_KEY,  # the pay buttons' tokens are signed in this process
            "MFA_ENCRYPTION_KEYS": ",".join(settings.MFA_ENCRYPTION_KEYS),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "HUEY_NAME": f"scale-out-{uuid.uuid4().hex[:8]}",
            "HUEY_IMMEDIATE": "0",
            "STRIPE_API_BASE": localstripe.url,
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": settings.STRIPE_WEBHOOK_SECRET,
            "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
            "STATIC_ROOT": str(static_root),
            "MEDIA_ROOT": str(media_root),
            "LOG_LEVEL": "WARNING",
        }
    )


class Cluster(list):
    """The web processes' base URLs, and (`env`) the environment they and the consumers run with."""

    env = None


@pytest.fixture
def cluster(localstripe):
    """Two gunicorn web processes and two Huey consumers; yields the two base URLs."""
    with tempfile.TemporaryDirectory() as static_root, tempfile.TemporaryDirectory() as media_root:
        env = service_env(localstripe, static_root, media_root)
        python = sys.executable
        subprocess.run([python, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        ports = [free_port(), free_port()]
        processes = [
            subprocess.Popen(
                [python, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "8"],
                cwd=ROOT,
                env=env,
            )
            for port in ports
        ] + [subprocess.Popen([python, "manage.py", "run_huey", "-w", "2"], cwd=ROOT, env=env) for _ in range(2)]
        try:
            urls = Cluster(f"http://127.0.0.1:{port}" for port in ports)
            urls.env = env
            for url in urls:
                wait_until(lambda url=url: _answers(f"{url}/healthz"), what=f"{url} to start")
            yield urls
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=20)


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        # Not up yet, or its first answer is slow on a loaded machine: ask again until the deadline.
        return False


def wait_until(condition, *, what, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def storm(payments):
    """The distinct events, each with its own effect, and a shuffled list of deliveries (each event
    several times) adding up to DELIVERIES."""
    refunded, disputed, flagged = (payments[i * PER_GROUP : (i + 1) * PER_GROUP] for i in range(3))
    events = (
        [samples.event("refund.created", samples.refund(payment, amount_cents=1000)) for payment in refunded]
        + [samples.event("charge.dispute.created", samples.dispute(payment, withdrawn=True)) for payment in disputed]
        + [
            samples.event("radar.early_fraud_warning.created", samples.early_fraud_warning(payment))
            for payment in flagged
        ]
        + [
            samples.event(
                "payment_intent.succeeded", {"id": payment.stripe_payment_intent_id, "object": "payment_intent"}
            )
            for payment in payments
        ]
    )
    deliveries = list(itertools.islice(itertools.cycle(events), DELIVERIES))
    random.Random(7).shuffle(deliveries)
    return events, deliveries


def deliver(url, stripe_event):
    body = samples.body(stripe_event)
    header = samples.signature_header(body, settings.STRIPE_WEBHOOK_SECRET)
    return requests.post(
        f"{url}/billing/webhooks/stripe/",
        data=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        timeout=60,
    ).status_code


def test_two_web_processes_and_two_workers_apply_every_effect_exactly_once(localstripe, cluster):
    plan = make_plan()
    payments = [make_paid_payment(localstripe, plan=plan) for _ in range(3 * PER_GROUP)]
    renewers = [make_paid_payment(localstripe, plan=plan) for _ in range(RENEWING)]
    clicks = []
    for payment in renewers:
        token = payment_token_issue(account=payment.account, plan=plan, kind="renewal", renewed_lot=payment.lot)
        session = browser_session(SimpleNamespace(url=cluster[0]), payment.account.user)
        clicks += [(session, url, token) for url in (*cluster, cluster[0])]  # the same button three times
    events, deliveries = storm(payments)
    receipts_before, lots_before = Receipt.objects.count(), Lot.objects.count()

    def click(job):
        session, url, token = job
        headers = {"X-CSRFToken": session.cookies["csrftoken"], "HX-Request": "true"}
        return session.post(f"{url}/pay/", data={"token": token}, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        delivered = pool.map(lambda pair: deliver(cluster[pair[0] % 2], pair[1]), enumerate(deliveries))
        clicked = pool.map(click, clicks)
        assert set(delivered) == {200}
        assert set(clicked) == {200}

    unfinished = [WebhookEvent.Status.PENDING, WebhookEvent.Status.PROCESSING, WebhookEvent.Status.FAILED]
    wait_until(lambda: not WebhookEvent.objects.filter(status__in=unfinished).exists(), what="every event")
    wait_until(lambda: not Receipt.objects.filter(pdf="").exists(), what="every receipt's PDF")

    # Every event stored once and applied; nothing waiting, failed or orphaned.
    assert WebhookEvent.objects.count() == len(events)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) <= {"processed", "ignored"}
    assert WebhookEvent.objects.filter(type="refund.created", status="processed").count() == PER_GROUP
    # Refunds: one row, one reversal (EUR 10 of EUR 150 for 10 h = 40 min), one credit note each.
    assert Refund.objects.count() == PER_GROUP
    assert list(LedgerEntry.objects.filter(kind="reversal").values_list("minutes", flat=True)) == [-40] * PER_GROUP
    # Disputes: the unused hours held once each.
    assert Dispute.objects.count() == PER_GROUP
    assert list(LedgerEntry.objects.filter(kind="dispute_hold").values_list("minutes", flat=True)) == [-600] * PER_GROUP
    assert FraudFlag.objects.filter(rule="radar").count() == PER_GROUP
    # Renewals: three clicks of one button, through both processes -> one payment, one lot each.
    renewals = Payment.objects.filter(kind="renewal")
    assert renewals.count() == RENEWING and set(renewals.values_list("status", flat=True)) == {"succeeded"}
    assert Lot.objects.count() == lots_before + RENEWING
    assert len(localstripe.get("/v1/payment_intents", limit=100)["data"]) == 3 * PER_GROUP + 2 * RENEWING
    for renewal in renewals:
        assert Notification.objects.filter(kind="payment_succeeded", dedupe_key__endswith=f":{renewal.pk}").count() == 1
    # Documents: receipts and credit notes numbered without gaps or repeats.
    assert Receipt.objects.count() == receipts_before + RENEWING + PER_GROUP
    for kind in (Receipt.Kind.RECEIPT, Receipt.Kind.CREDIT_NOTE):
        numbers = sorted(
            int(number.rsplit("-", 1)[1])
            for number in Receipt.objects.filter(kind=kind).values_list("number", flat=True)
        )
        assert numbers == list(range(1, len(numbers) + 1)), kind
    # The ledger still adds up for every account.
    assert not accounts_out_of_balance().exists()


def test_rate_limits_are_one_count_across_both_web_processes(localstripe, cluster):
    """The limits live in Redis: a student alternating between the two processes gets the limit
    once (not once per process), and so does an address sending badly signed webhooks."""
    student = make_student()
    session = browser_session(SimpleNamespace(url=cluster[0]), student.user)
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "Referer": cluster[0]}
    user_limit = int(settings.PORTAL_RATE_LIMITS["card_setup"]["user"].split("/")[0])
    setups = [
        session.post(f"{cluster[n % 2]}/cards/setup/", headers=headers, timeout=30).status_code
        for n in range(user_limit + 2)
    ]
    assert setups == [200] * user_limit + [429, 429]
    assert len(localstripe.get("/v1/setup_intents", limit=100)["data"]) == user_limit

    failures_allowed = int(settings.PORTAL_RATE_LIMITS["webhook_bad_signature"]["ip"].split("/")[0])
    forged = [
        requests.post(
            f"{cluster[n % 2]}/billing/webhooks/stripe/",
            data=b"{}",
            headers={"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"},
            timeout=30,
        ).status_code
        for n in range(failures_allowed + 2)
    ]
    assert forged == [400] * failures_allowed + [429, 429]


# A session recorded by its own process: its commit enqueues automatic top-up's check on the queue.
RECORD_SESSION = (
    "import os; from django.utils import timezone; from billing import ledger; from billing.models import Account; "
    "ledger.usage_record(account=Account.objects.get(pk=int(os.environ['ACCOUNT_ID'])), minutes=100, "
    "occurred_at=timezone.now(), tutor='T', subject='S')"
)


def test_two_sessions_recorded_on_two_processes_make_one_automatic_top_up(localstripe, cluster):
    """Two processes record a session each at the same moment; their checks run on the two Huey
    consumers. The episode makes one payment, and localstripe counts one charge."""
    account = make_student()
    credit(account, 300)
    card = add_card(account, localstripe)
    plan = make_plan("Ten hours", minutes=600, price_cents=15000)
    auto_top_up_save(
        account=account,
        threshold_minutes=120,
        plan=plan,
        card=card,
        monthly_count_cap=3,
        monthly_amount_cap_cents=45000,
        actor=account.user,
    )
    env = cluster.env | {"ACCOUNT_ID": str(account.pk)}  # the consumers' queue
    sessions = [
        subprocess.Popen([sys.executable, "manage.py", "shell", "-c", RECORD_SESSION], cwd=ROOT, env=env)
        for _ in range(2)
    ]
    assert [session.wait(timeout=120) for session in sessions] == [0, 0]
    bought = Payment.objects.filter(account=account, kind=Payment.Kind.AUTO_TOP_UP)
    wait_until(lambda: bought.filter(status=Payment.Status.SUCCEEDED).exists(), what="the automatic top-up")
    time.sleep(3)  # the later check, on the other consumer, has long run by now
    assert bought.count() == 1
    account.refresh_from_db()
    intents = [intent for intent in localstripe.payment_intents() if intent["customer"] == account.stripe_customer_id]
    assert len(intents) == 1
    assert account.balance_minutes == 100 + 600
