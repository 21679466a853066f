"""Demo data for `make run`: plans and students with months of history, built through the ledger.

Idempotent: plans are matched by name and a student who already exists is left as they are.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from allauth.account.models import EmailAddress
from django.db import transaction
from django.utils import timezone

from billing import ledger
from billing.models import Plan
from portal.models import User

DEMO_PASSWORD = "tutor-demo-2026"

PLANS = [
    {"name": "Starter", "minutes": 300, "price_cents": 8000, "validity_days": 60, "sort_order": 1,
     "description": "Try us out or brush up before an exam."},
    {"name": "Standard", "minutes": 600, "price_cents": 15000, "validity_days": 90, "sort_order": 2,
     "is_featured": True, "description": "A session a week for a term."},
    {"name": "Intensive", "minutes": 1200, "price_cents": 28000, "validity_days": 180, "sort_order": 3,
     "description": "Two sessions a week, best price per hour."},
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
    "ben.student@example.com": ("Ben", "Okafor", [LotStory("Starter", -40, -38, -3, 195)]),
    "cleo.student@example.com": ("Cleo", "Nowak", []),
}
STAFF_EMAIL = "staff@example.com"


def seed_demo():
    """Create the demo plans and users. Returns the logins to print."""
    plans = {spec["name"]: _plan(spec) for spec in PLANS}
    logins = []
    for email, (first_name, last_name, stories) in STUDENTS.items():
        role = "student with a rich history" if len(stories) > 1 else "student near zero" if stories else "new student"
        logins.append(DemoLogin(email, DEMO_PASSWORD, role))
        if not User.objects.filter(email=email).exists():
            _student(email, first_name, last_name, stories, plans)
    if not User.objects.filter(email=STAFF_EMAIL).exists():
        with transaction.atomic():
            staff = User.objects.create_superuser(STAFF_EMAIL, DEMO_PASSWORD, first_name="Sam", last_name="Staff")
            _verify_email(staff)
    logins.append(DemoLogin(STAFF_EMAIL, DEMO_PASSWORD, "staff"))
    ledger.lots_expire_due()
    return logins


def _plan(spec):
    plan, _ = Plan.objects.get_or_create(name=spec["name"], defaults=spec)
    return plan


def _verify_email(user):
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)


@transaction.atomic
def _student(email, first_name, last_name, stories, plans):
    user = User.objects.create_user(email, DEMO_PASSWORD, first_name=first_name, last_name=last_name)
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
