"""Small builders for tests: a student with an account, a lot bought some days ago."""

import re
import time
from contextlib import contextmanager
from datetime import timedelta
from itertools import count
from urllib.parse import parse_qs

from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value
from django.contrib.auth.models import Group
from django.utils import timezone

from billing import cards, ledger, payments, subscriptions
from billing.jobs import periodic_jobs
from billing.models import JobRun, Payment, Plan
from billing.tests.network import LossyProxy
from portal.models import User

PASSWORD = "correct-horse-battery-9"
_numbers = count(1)


def make_student(email=None, **fields):
    email = email or f"student{next(_numbers)}@example.com"
    user = User.objects.create_user(email, PASSWORD, **fields)
    return ledger.account_open(user=user)


def make_staff(email="staff@example.com"):
    return User.objects.create_user(email, PASSWORD, is_staff=True)


# A fixed TOTP secret for staff built in tests, so a test can compute the current code.
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def make_console_user(email, *, role="Finance"):
    """A staff member of the Support or Finance group, with a verified email and TOTP set up."""
    user = User.objects.create_user(email, PASSWORD, is_staff=True)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    user.groups.add(Group.objects.get(name=role))
    TOTP.activate(user, TOTP_SECRET)
    return user


def totp_code(moment=None):
    counter = int((moment or time.time()) // 30)
    return format_hotp_value(hotp_value(TOTP_SECRET, counter))


def verified_user(email, password=PASSWORD):
    """A user who can sign in through allauth: their email address is verified."""
    user = User.objects.create_user(email, password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def job_run(task, *, started_at, outcome=JobRun.Outcome.SUCCEEDED, result=None, error="", duration_ms=120):
    """A recorded run of a periodic job (`task`: Huey's name, "billing.tasks.check_ledger")."""
    finished = outcome != JobRun.Outcome.RUNNING
    return JobRun.objects.create(
        task=task,
        started_at=started_at,
        finished_at=started_at + timedelta(milliseconds=duration_ms) if finished else None,
        duration_ms=duration_ms if finished else None,
        outcome=outcome,
        result=result,
        error=error,
    )


def jobs_all_ran(at):
    """A successful run of every periodic job at `at`: none of them is late for a while."""
    return [job_run(job.name, started_at=at) for job in periodic_jobs()]


def credit(account, minutes, *, days_valid=90, bought_days_ago=0, name="Standard", price_cents=15000, plan=None):
    purchased_at = timezone.now() - timedelta(days=bought_days_ago)
    return ledger.lot_credit(
        account=account,
        name=name,
        minutes=minutes,
        plan=plan,
        price_cents=price_cents,
        purchased_at=purchased_at,
        expires_at=ledger.lot_expiry(purchased_at=purchased_at, validity_days=days_valid),
    )


def use(account, minutes, *, days_ago=0, tutor="Dr. Maria Keller", subject="Mathematics"):
    return ledger.usage_record(
        account=account,
        minutes=minutes,
        occurred_at=timezone.now() - timedelta(days=days_ago),
        tutor=tutor,
        subject=subject,
    )


def make_plan(name="Standard", minutes=600, price_cents=15000, validity_days=90, **fields):
    return Plan.objects.create(
        name=name, minutes=minutes, price_cents=price_cents, validity_days=validity_days, **fields
    )


def payment_row(account, *, status=Payment.Status.SUCCEEDED, **fields):
    """A payment row for what reads payments (tables, searches, alerts, reports), as the pay button
    leaves it: Standard, 10 h for 150.00, no call to Stripe. `fields` override any column."""
    number = next(_numbers)
    plan = fields.pop("plan", None) or Plan.objects.filter(name="Standard").first() or make_plan()
    columns = {
        "kind": Payment.Kind.PURCHASE,
        "amount_cents": 15000,
        "currency": "EUR",
        "minutes": 600,
        "validity_days": 90,
        "idempotency_key": f"payment-row-{number}",
        "stripe_payment_intent_id": f"pi_row_{number}",
    }
    return Payment.objects.create(account=account, plan=plan, status=status, **columns | fields)


def add_card(account, localstripe, number="4242424242424242", **expiry):
    """Save a card the way the cards page does: SetupIntent, confirmed by "the browser", then saved."""
    setup_intent = cards.card_setup_start(account=account)
    localstripe.browser_confirm_setup(setup_intent, number, **expiry)
    return cards.card_save(account=account, setup_intent_id=setup_intent.id)


def make_paid_payment(localstripe, account=None, plan=None, number="4242424242424242"):
    """A succeeded payment through a real (stand-in) Stripe charge, with its lot credited."""
    account = account or make_student()
    plan = plan or Plan.objects.filter(name="Standard").first() or make_plan()
    if not account.payment_methods.active().exists():
        add_card(account, localstripe, number)
    token = payments.payment_token_issue(account=account, plan=plan, kind="purchase")
    return payments.payment_start(account=account, token=token)


def make_subscription_plan(name="Monthly 8 h", minutes=480, price_cents=9900, interval="month", **fields):
    """A subscription plan: `minutes` every `interval` for `price_cents` a period."""
    return Plan.objects.create(
        name=name, kind=Plan.Kind.SUBSCRIPTION, interval=interval, minutes=minutes, price_cents=price_cents, **fields
    )


def subscribe(account, plan, localstripe=None, number="4242424242424242"):
    """Subscribe the way the subscribe button does (a card saved first if the account has none):
    one click with a fresh token. Returns the Subscription."""
    if localstripe is not None and not account.payment_methods.active().exists():
        add_card(account, localstripe, number)
    token = subscriptions.subscribe_token_issue(account=account, plan=plan)
    return subscriptions.subscription_start(account=account, token=token)


class StripeBilling:
    """What Stripe Billing says about objects the stand-in cannot make (a renewal's invoice and its
    PaymentIntent, a subscription Stripe moved on, a price change), answered at the HTTP boundary in
    front of localstripe; every other request goes through to it. `has` makes Stripe know an object
    as given (a later `has` of the same id replaces it); `answer` serves any request line matching a
    pattern with `(status, body)` or what a callable makes of the request's form fields, and records
    those fields in `sent[pattern]`."""

    PATHS = {"invoice": "invoices", "payment_intent": "payment_intents", "subscription": "subscriptions"}

    def __init__(self, upstream):
        self.objects = {}
        self.sent = {}
        self.proxy = LossyProxy(upstream)
        self.url = self.proxy.url

    def has(self, *stripe_objects):
        for stripe_object in stripe_objects:
            known = stripe_object["id"]
            if known not in self.objects:
                request = re.compile(rf"^GET /v1/{self.PATHS[stripe_object['object']]}/{re.escape(known)}(\?|$)")
                self.proxy.canned[request] = lambda body, known=known: (200, self.objects[known])
            self.objects[known] = stripe_object
        return stripe_objects[0] if len(stripe_objects) == 1 else stripe_objects

    def answer(self, pattern, answer):
        self.sent[pattern] = []

        def record(body):
            fields = {key: values[-1] for key, values in parse_qs(body.decode(), keep_blank_values=True).items()}
            self.sent[pattern].append(fields)
            return answer(fields) if callable(answer) else answer

        self.proxy.canned[re.compile(pattern)] = record

    def close(self):
        self.proxy.close()


@contextmanager
def stripe_billing(localstripe, settings):
    """Inside this block the portal speaks to Stripe through a `StripeBilling`."""
    billing = StripeBilling(localstripe.url)
    settings.STRIPE_API_BASE = billing.url
    try:
        yield billing
    finally:
        billing.close()
        settings.STRIPE_API_BASE = localstripe.url
