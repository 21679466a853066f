"""Demo data for `make run`: plans and students with months of history, built through the ledger.

Idempotent: plans are matched by name and a student who already exists is left as they are.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from billing import ledger, receipts, samples, subscriptions
from billing.disputes.holds import dispute_record
from billing.formatting import period_text
from billing.fraud.rules import fraud_flag_raise
from billing.models import Account, Payment, PaymentMethod, Plan, Receipt, Subscription, WebhookEvent
from portal.models import User

DEMO_PASSWORD = "tutor-demo-2026"

PLANS = [
    {"name": "Starter", "minutes": 300, "price_cents": 8000, "validity_days": 60, "sort_order": 1,
     "description": "Try us out or brush up before an exam."},
    {"name": "Standard", "minutes": 600, "price_cents": 15000, "validity_days": 90, "sort_order": 2,
     "is_featured": True, "description": "A session a week for a term."},
    {"name": "Intensive", "minutes": 1200, "price_cents": 28000, "validity_days": 180, "sort_order": 3,
     "description": "Two sessions a week, best price per hour."},
    {"name": "Monthly 8 h", "kind": "subscription", "interval": "month", "minutes": 480, "price_cents": 9900,
     "sort_order": 5, "description": "Two sessions a week, renewed every month."},
    {"name": "Monthly 12 h", "kind": "subscription", "interval": "month", "minutes": 720, "price_cents": 13900,
     "sort_order": 6, "description": "Three sessions a week, renewed every month."},
    {"name": "Weekly 2 h", "kind": "subscription", "interval": "week", "minutes": 120, "price_cents": 2900,
     "sort_order": 7, "description": "One long session a week, renewed every week."},
    {"name": "Summer school 2025", "minutes": 900, "price_cents": 19500, "validity_days": 45, "sort_order": 9,
     "is_active": False, "description": "No longer on sale."},
]  # fmt: skip

TUTORS = [("Dr. Maria Keller", "Mathematics"), ("Jonas Weber", "Physics"), ("Leila Haddad", "English")]
DURATIONS = [60, 90, 45, 60, 75]


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    role: str


@dataclass(frozen=True)
class LotStory:
    """A package bought `bought_day` days from today, then used in sessions spread evenly over
    the window, up to `budget_minutes` in all."""

    plan: str
    bought_day: int
    use_from_day: int
    use_until_day: int
    budget_minutes: int


STUDENTS = {
    "ana.student@example.com": (
        "Ana",
        "Moreno",
        [
            LotStory("Intensive", -300, -298, -125, 1050),  # expired with 2.5 h unused
            LotStory("Intensive", -150, -118, -88, 330),
            LotStory("Standard", -85, -83, -2, 390),  # 3.5 h left, expiring this week
        ],
    ),
    "ben.student@example.com": ("Ben", "Okafor", [LotStory("Starter", -20, -18, -1, 195)]),
    "cleo.student@example.com": ("Cleo", "Nowak", []),
    "dina.student@example.com": ("Dina", "Silva", []),
    "joao.aluno@example.com": ("João", "Ferreira", [LotStory("Standard", -40, -38, -3, 270)]),
}
SUBSCRIBER = "dina.student@example.com"
# Students who read the portal, their emails and receipts in European Portuguese, on Lisbon's clock.
PORTUGUESE_READERS = {"joao.aluno@example.com"}
# Staff: Finance and Support (console groups), and an operator (a superuser, for the Django admin:
# no console group gives the admin). All use TOTP, with this published secret so that `make totp`
# can print the current code: demo data only.
OPERATOR = "Operator"
STAFF = {
    "staff@example.com": ("Sam", "Staff", "Finance"),
    "support@example.com": ("Sol", "Support", "Support"),
    "admin@example.com": ("Ada", "Admin", OPERATOR),
}
DEMO_TOTP_SECRET = "KRUXI4TPOJUW4Z2IN52XE4ZAMRSW233P"


def seed_demo():
    """Create the demo plans and users. Returns the logins to print."""
    plans = {spec["name"]: _plan(spec) for spec in PLANS}
    logins = []
    for email, (first_name, last_name, stories) in STUDENTS.items():
        role = "student with a rich history" if len(stories) > 1 else "student near zero" if stories else "new student"
        role = "student with a monthly subscription" if email == SUBSCRIBER else role
        role = "student who reads Portuguese (pt-PT, Lisbon time)" if email in PORTUGUESE_READERS else role
        logins.append(DemoLogin(email, DEMO_PASSWORD, role))
        if not User.objects.filter(email=email).exists():
            _student(email, first_name, last_name, stories, plans)
    for email, (first_name, last_name, role) in STAFF.items():
        logins.append(DemoLogin(email, DEMO_PASSWORD, f"staff ({role}), code: make totp"))
        if not User.objects.filter(email=email).exists():
            _staff(email, first_name, last_name, role)
    ledger.lots_expire_due()
    if not Payment.objects.exists():
        _console_history()
    _demo_receipts()
    return logins


@transaction.atomic
def _staff(email, first_name, last_name, role):
    make = User.objects.create_superuser if role == OPERATOR else User.objects.create_user
    user = make(email, DEMO_PASSWORD, first_name=first_name, last_name=last_name, is_staff=True)
    _verify_email(user)
    if role != OPERATOR:
        user.groups.add(Group.objects.get(name=role))
    TOTP.activate(user, DEMO_TOTP_SECRET)


def demo_totp_code():
    counter = int(timezone.now().timestamp()) // 30
    return format_hotp_value(hotp_value(DEMO_TOTP_SECRET, counter))


@transaction.atomic
def _console_history():
    """What the staff console shows on a fresh demo: the payments behind the students' packages,
    a declined attempt, a dispute awaiting evidence, open fraud flags and a failed Stripe event.

    These payments never went through the Stripe stand-in (it is not running while seeding), so
    Stripe refuses to refund them; buy hours as a student to try a refund end to end."""
    payments = []
    for account in Account.objects.filter(user__email__in=STUDENTS).select_related("user"):
        card = PaymentMethod.objects.create(
            account=account,
            stripe_payment_method_id=f"pm_demo_{account.pk}",
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=timezone.localdate().year + 3,
            # Stripe never saw this card: it is history only, never offered for a new charge.
            removed_at=timezone.now(),
        )
        for lot in account.lots.filter(price_cents__gt=0).order_by("purchased_at"):
            payments.append(_demo_payment(account, card, lot=lot, at=lot.purchased_at))
    ben = Account.objects.get(user__email="ben.student@example.com")
    declined = _demo_payment(ben, ben.payment_methods.get(), lot=None, at=timezone.now() - timedelta(hours=3))
    # Just opened, funds not yet withdrawn: the student's hours are not held yet.
    disputed = next(payment for payment in payments if payment.lot.expires_at > timezone.now())
    dispute_record(payment=disputed, dispute_object=samples.dispute(disputed), event_type="charge.dispute.created")
    fraud_flag_raise(payment=declined, warning_object=samples.early_fraud_warning(declined))
    dina = Account.objects.get(user__email=SUBSCRIBER)
    _demo_subscription(dina, dina.payment_methods.get(), started=timezone.now() - timedelta(days=10))
    failed = WebhookEvent.objects.create(
        stripe_event_id="evt_demo_failed",
        type="charge.refund.updated",
        payload=samples.event("charge.refund.updated", samples.refund(payments[0]), event_id="evt_demo_failed"),
        payment_intent_id=payments[0].stripe_payment_intent_id,
        status=WebhookEvent.Status.FAILED,
        attempts=10,
        last_error="ProviderUnavailable: the payment provider did not answer (demo).",
    )
    return failed


def _demo_receipts():
    """The receipt the Receipts page promises for every seeded purchase: numbered by the real
    series (issued now, so this year's numbers, stating when each was paid) and its PDF rendered
    here (about 0.1 s each), so the first one opened is there. Their emails count as sent when the
    purchase was made: a fresh demo mails no one, and the delivery job finds nothing to send."""
    seeded = Payment.objects.filter(
        idempotency_key__startswith="demo-", status=Payment.Status.SUCCEEDED, receipt__isnull=True
    )
    for payment in seeded.select_related("account__user", "plan", "payment_method", "lot").order_by("settled_at"):
        with transaction.atomic():
            receipt = receipts.receipt_issue(payment=payment)
            Receipt.objects.filter(pk=receipt.pk).update(emailed_at=payment.settled_at)
        receipt.refresh_from_db()
        if not receipt.pdf:  # an immediate queue (tests) has rendered it on commit already
            receipts.receipt_render(receipt=receipt)


def _demo_payment(account, card, *, lot, at):
    plan = lot.plan if lot else Plan.objects.get(name="Intensive")
    payment = Payment.objects.create(
        account=account,
        plan=plan,
        kind=Payment.Kind.PURCHASE,
        amount_cents=plan.price_cents,
        currency=plan.currency,
        minutes=plan.minutes,
        validity_days=plan.validity_days,
        payment_method=card,
        status=Payment.Status.SUCCEEDED if lot else Payment.Status.FAILED,
        failure_code="" if lot else "card_declined",
        failure_message="" if lot else "Your card was declined by your bank.",
        idempotency_key=f"demo-{account.pk}-{at.timestamp():.0f}",
        stripe_payment_intent_id=f"pi_demo_{account.pk}_{at.timestamp():.0f}",
        lot=lot,
        settled_at=at,
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=at)  # as if made back then
    payment.refresh_from_db()
    return payment


def _demo_subscription(account, card, *, started):
    """Dina's monthly plan, ten days into its first period, with that period's lot. Like the other
    seeded payments it never went through the stand-in, so Stripe does not know it: drive its
    renewal, a failed renewal or its end with `stripe_send_event subscription-...`, and subscribe
    another student from the dashboard to try the self-service actions end to end."""
    plan = Plan.objects.get(name="Monthly 8 h")
    period_end = subscriptions.period_after(started, plan.interval, 1)
    subscription = Subscription.objects.create(
        account=account,
        plan=plan,
        status=Subscription.Status.ACTIVE,
        idempotency_key=f"demo-subscription-{account.pk}",
        stripe_subscription_id=f"sub_demo_{account.pk}",
        stripe_item_id=f"si_demo_{account.pk}",
        payment_method=card,
        current_period_start=started,
        current_period_end=period_end,
    )
    lot = ledger.lot_credit(
        account=account,
        name=f"{plan.name}, {period_text(started, plan.interval)}",
        minutes=plan.minutes,
        plan=plan,
        price_cents=plan.price_cents,
        currency=plan.currency,
        purchased_at=started,
        expires_at=subscriptions.period_after(period_end, plan.interval, plan.rollover_periods),
    )
    payment = _demo_payment(account, card, lot=lot, at=started)
    Payment.objects.filter(pk=payment.pk).update(
        kind=Payment.Kind.SUBSCRIPTION,
        subscription=subscription,
        stripe_invoice_id=f"in_demo_{account.pk}",
        period_start=started,
        period_end=period_end,
        lot_name=lot.name,
        lot_expires_at=lot.expires_at,
    )
    return subscription


def _plan(spec):
    plan, _ = Plan.objects.get_or_create(name=spec["name"], defaults=spec)
    return plan


def _verify_email(user):
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)


@transaction.atomic
def _student(email, first_name, last_name, stories, plans):
    user = User.objects.create_user(email, DEMO_PASSWORD, first_name=first_name, last_name=last_name)
    if email in PORTUGUESE_READERS:
        user.language, user.time_zone = "pt-pt", "Europe/Lisbon"
        user.save(update_fields=["language", "time_zone"])
    _verify_email(user)
    account = ledger.account_open(user=user)
    session_number = 0
    for story in stories:
        plan = plans[story.plan]
        purchased_at = _day(story.bought_day, time(10, 30))
        ledger.lot_credit(
            account=account,
            name=plan.name,
            minutes=plan.minutes,
            plan=plan,
            price_cents=plan.price_cents,
            currency=plan.currency,
            purchased_at=purchased_at,
            expires_at=ledger.lot_expiry(purchased_at=purchased_at, validity_days=plan.validity_days),
        )
        durations = _session_durations(session_number, story.budget_minutes)
        span = story.use_until_day - story.use_from_day
        for index, minutes in enumerate(durations):
            day = story.use_from_day + round(span * index / max(len(durations) - 1, 1))
            tutor, subject = TUTORS[session_number % len(TUTORS)]
            ledger.usage_record(
                account=account, minutes=minutes, occurred_at=_day(day, time(16)), tutor=tutor, subject=subject
            )
            session_number += 1


def _session_durations(start, budget_minutes):
    durations = []
    while sum(durations) < budget_minutes:
        minutes = DURATIONS[(start + len(durations)) % len(DURATIONS)]
        durations.append(min(minutes, budget_minutes - sum(durations)))
    return durations


def _day(offset, at):
    local = timezone.localdate() + timedelta(days=offset)
    return timezone.make_aware(datetime.combine(local, at))
