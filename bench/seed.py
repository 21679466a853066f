"""The benchmark's bulk seeder: years of students, sessions, payments and Stripe events, fast.

Each student's history is simulated in order (purchases, sessions drawn from the soonest-expiring
usable lot, expiries booked as the job would, the odd refund), so the rows keep the ledger's
invariants: Account.balance_minutes == the sum of its entries == the sum of its lots' remainders,
`balance_after` runs in id order, and every CHECK and UNIQUE constraint holds (the database checks
them on insert; `bench_database_verify` checks the sums). Rows go in with executemany (SQLite) or
COPY (PostgreSQL), a few hundred students per transaction, with ids chosen here.

Scales: full = 10,000 students, >= 1,000,000 ledger entries, >= 100,000 lots, 200,000 payments
(10,000 in flight), 500,000 webhook events; small = 1/50 of that. Both have the same "long
history" student (about 3,000 sessions over five years) and a Finance staff member with TOTP.

    python -m bench.seed --scale small     # wipes and builds the bench database (see bench/environment.py)
"""

import argparse
import functools
import json
import random
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

# Django is set up by the caller (bench.run, or main() below) before these are used.
from django.conf import settings
from django.db import connection, transaction

LONG_HISTORY_EMAIL = "long.history@bench.example.com"
STAFF_EMAIL = "finance@bench.example.com"
PASSWORD = "bench-password-2026"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
# Lots whose expiry passed this recently are left for the expiry job, as if it had been down for
# two days: the expiry scan then has real work to do.
EXPIRY_BACKLOG = timedelta(days=2)
STUDENTS_PER_TRANSACTION = 250

PLANS = [
    {"name": "Starter", "minutes": 300, "price_cents": 8000, "validity_days": 60, "sort_order": 1},
    {"name": "Standard", "minutes": 600, "price_cents": 15000, "validity_days": 90, "sort_order": 2,
     "is_featured": True},
    {"name": "Intensive", "minutes": 1200, "price_cents": 28000, "validity_days": 180, "sort_order": 3},
]  # fmt: skip
TUTORS = [
    ("Dr. Maria Keller", "Mathematics"),
    ("Jonas Weber", "Physics"),
    ("Leila Haddad", "English"),
    ("Tomás Ruiz", "Spanish"),
    ("Ines Schwarz", "Chemistry"),
    ("Kwame Mensah", "Economics"),
]
DURATIONS = (45, 60, 60, 60, 75, 90)
FAILURES = ["card_declined", "insufficient_funds", "expired_card", "incorrect_cvc", "processing_error"]
FIRST_NAMES = ["Ana", "Ben", "Cleo", "Dario", "Emma", "Farid", "Greta", "Hugo", "Ida", "Jon", "Kira", "Luca"]
LAST_NAMES = ["Moreno", "Okafor", "Nowak", "Rossi", "Schmidt", "Haddad", "Larsen", "Kowalski", "Dubois", "Ito"]


@dataclass(frozen=True)
class Scale:
    name: str
    students: int
    payments: int  # including those in flight (one per student)
    webhook_events: int
    # Regular students: days of history and days between sessions.
    history_days: tuple = (30, 800)
    session_gap_days: tuple = (1.5, 6.5)
    # The long-history student: the same dashboard at every scale.
    long_history_days: int = 1850
    long_history_gap_days: tuple = (0.3, 0.9)
    deep_page: int = 2000  # the console's deep page (25 rows a page)
    usage_page: int = 50  # the dashboard's usage table (10 rows a page)


SCALES = {
    "full": Scale("full", students=10_000, payments=200_000, webhook_events=500_000),
    "small": Scale("small", students=200, payments=4_000, webhook_events=10_000, deep_page=40),
}


class _Lot:
    __slots__ = ("id", "plan", "purchased_at", "expires_at", "expired_at", "remaining", "payment_id")

    def __init__(self, lot_id, plan, purchased_at, expires_at):
        self.id, self.plan, self.purchased_at, self.expires_at = lot_id, plan, purchased_at, expires_at
        self.expired_at = None
        self.remaining = 0
        self.payment_id = None


class Seeder:
    """Builds rows in memory for a few hundred students, then writes them in one transaction."""

    def __init__(self, scale, *, now, seed=2026):
        from billing import models as billing
        from billing.formatting import hours_text, money_text
        from billing.ledger import lot_expiry

        self.scale = scale
        self.now = now
        self.rng = random.Random(seed)
        self.m = billing
        self.hours_text, self.money_text, self.lot_expiry = hours_text, money_text, lot_expiry
        self.postgres = connection.vendor == "postgresql"
        self.rows = defaultdict(list)
        self.counts = Counter()
        self.next_ids = {}
        self.sequences = Counter()  # (receipt kind, year) -> last number
        self.students = []  # (account_id, user_id, card_id, customer_id, joined) for top-ups
        self.password = _password_hash()
        self.tz = settings.TIME_ZONE
        self.parties = {
            "seller_name": settings.PORTAL_SELLER_NAME,
            "seller_address": settings.PORTAL_SELLER_ADDRESS,
            "seller_tax_id": settings.PORTAL_SELLER_TAX_ID,
            "seller_email": settings.PORTAL_SELLER_EMAIL,
        }
        self.event_number = 0

    # ---- ids and values -------------------------------------------------------------------------

    def new_id(self, model):
        if model not in self.next_ids:
            from django.db.models import Max

            self.next_ids[model] = (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
        value = self.next_ids[model]
        self.next_ids[model] += 1
        return value

    def at(self, moment):
        """A UTC datetime as the database driver takes it (SQLite: Django's text form)."""
        if moment is None or self.postgres:
            return moment
        return str(moment.astimezone(UTC).replace(tzinfo=None))

    def add(self, model, row):
        self.rows[model].append(row)

    # ---- students -------------------------------------------------------------------------------

    def student(self, *, email, first_name, last_name, history_days, gap_days, plan_weights):
        m, rng, now = self.m, self.rng, self.now
        from allauth.account.models import EmailAddress

        from portal.models import User

        joined = now - timedelta(days=history_days)
        user_id, account_id, card_id = self.new_id(User), self.new_id(m.Account), self.new_id(m.PaymentMethod)
        self.add(User, (user_id, self.password, False, first_name, last_name, False, True, self.at(joined), email))
        self.add(EmailAddress, (self.new_id(EmailAddress), user_id, email, True, True))
        exp_year, exp_month = self._card_expiry()
        self.add(
            m.PaymentMethod,
            (card_id, account_id, f"pm_bench_{card_id}", rng.choice(["visa", "mastercard"]),
             f"{rng.randrange(10000):04d}", exp_month, exp_year, True, self.at(joined + timedelta(minutes=5))),
        )  # fmt: skip
        customer_id = f"cus_bench_{account_id}"
        state = {"balance": 0, "account_id": account_id, "user_id": user_id, "card_id": card_id, "email": email}
        state["name"] = f"{first_name} {last_name}"
        open_lots, all_lots = [], []
        backlog_start = now - EXPIRY_BACKLOG

        def expire_until(moment):
            moment = min(moment, backlog_start)
            for lot in [lot for lot in open_lots if lot.expires_at <= moment]:
                lot.expired_at = lot.expires_at + timedelta(minutes=rng.uniform(0.5, 5))
                open_lots.remove(lot)
                if lot.remaining:
                    lost = lot.remaining
                    self._entry(state, lot, "expiry", -lost, lot.expires_at, lot.expired_at)
                    self._notification(
                        state, "lot_expired", f"expired:{lot.id}", lot.id, lot.expired_at,
                        f"{self.hours_text(lost)} expired unused", f"Your {lot.plan.name} package expired unused.",
                    )  # fmt: skip

        t = joined + timedelta(days=rng.uniform(0, 2))
        previous = None
        while t < now - timedelta(hours=1):
            plan = rng.choices(self.plans, weights=plan_weights)[0]
            expire_until(t)
            if rng.random() < 0.5:
                self._payment(state, plan, "failed", t - timedelta(minutes=rng.uniform(1, 30)))
            lot = self._purchase(state, plan, t, previous)
            open_lots.append(lot)
            all_lots.append(lot)
            previous = lot
            if rng.random() < 0.01:
                self._refund(state, lot, t + timedelta(hours=1))
            wanted, used = plan.minutes * rng.uniform(0.55, 1.0), 0
            session_at = t + timedelta(days=rng.uniform(0.3, 3))
            while used < wanted and session_at < now:
                expire_until(session_at)
                minutes = rng.choice(DURATIONS)
                if not self._session(state, open_lots, session_at, minutes):
                    break
                used += minutes
                session_at += timedelta(days=rng.uniform(*gap_days))
            t = session_at + timedelta(days=rng.uniform(0, gap_days[1]))
        expire_until(now)
        for lot in all_lots:
            self.add(
                m.Lot,
                (lot.id, account_id, lot.plan.id, lot.plan.name, lot.plan.minutes, lot.remaining, lot.plan.price_cents,
                 "EUR", self.at(lot.purchased_at), self.at(lot.expires_at), self.at(lot.expired_at)),
            )  # fmt: skip
        self._in_flight(state, joined)
        self.add(m.Account, (account_id, user_id, customer_id, state["balance"], 120, self.at(joined)))
        self.students.append((account_id, user_id, card_id, customer_id, joined))
        self.counts["students"] += 1
        customer = {"id": customer_id, "object": "customer", "email": email}
        self._webhook_event(state, "customer.created", customer, joined)
        self._webhook_event(
            state, "payment_method.attached",
            {"id": f"pm_bench_{card_id}", "object": "payment_method", "customer": customer_id, "type": "card"},
            joined + timedelta(minutes=5), status="processed",
        )  # fmt: skip
        return account_id

    def _card_expiry(self):
        today = self.now.date()
        if self.rng.random() < 0.03:  # expires at the end of next month: the card alert's subject
            return (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
        return today.year + self.rng.randint(1, 5), self.rng.randint(1, 12)

    def _entry(self, state, lot, kind, minutes, occurred_at, recorded_at, usage_id=None, reason=""):
        lot.remaining += minutes
        state["balance"] += minutes
        assert lot.remaining >= 0 and state["balance"] >= 0, "the simulation broke the ledger"
        self.add(
            self.m.LedgerEntry,
            (self.new_id(self.m.LedgerEntry), state["account_id"], lot.id, kind, minutes, state["balance"], usage_id,
             reason, self.at(occurred_at), self.at(recorded_at)),
        )  # fmt: skip

    def _purchase(self, state, plan, at, previous):
        m = self.m
        expires_at = self.lot_expiry(purchased_at=at, validity_days=plan.validity_days).astimezone(UTC)
        lot = _Lot(self.new_id(m.Lot), plan, at, expires_at)
        self._entry(state, lot, "credit", plan.minutes, at, at)
        kind = "purchase" if previous is None else self.rng.choice(["renewal", "renewal", "top_up", "purchase"])
        renewed = previous if kind == "renewal" else None
        payment_id = self._payment(state, plan, "succeeded", at - timedelta(seconds=3), lot=lot, renewed=renewed)
        lot.payment_id = payment_id
        self._receipt(state, plan, lot, payment_id, at)
        self._notification(
            state, "payment_succeeded", f"payment-ok:{payment_id}", payment_id, at + timedelta(seconds=30),
            f"{self.hours_text(plan.minutes)} added", f"Your payment for {plan.name} went through.",
        )  # fmt: skip
        return lot

    def _payment(self, state, plan, status, created_at, *, lot=None, renewed=None, kind=None, intent=True):
        m, rng = self.m, self.rng
        payment_id = self.new_id(m.Payment)
        intent_id = f"pi_bench_{payment_id}" if intent else None
        failure_code = rng.choice(FAILURES) if status == "failed" else ""
        failure_message = "Your card was declined by your bank." if failure_code else ""
        settled = created_at + timedelta(seconds=3) if status in ("succeeded", "failed") else None
        updated = settled or created_at
        kind = kind or ("renewal" if renewed else "purchase" if lot is None else "top_up")
        self.add(
            m.Payment,
            (payment_id, state["account_id"], plan.id, kind, renewed.id if renewed else None, plan.price_cents, "EUR",
             plan.minutes, plan.validity_days, state["card_id"], status, f"bench-{payment_id}", intent_id, failure_code,
             failure_message, lot.id if lot else None, self.at(created_at), self.at(updated), self.at(settled)),
        )  # fmt: skip
        self.counts[f"payments_{status}"] += 1
        if intent and status in ("succeeded", "failed"):
            intent_object = {
                "id": intent_id, "object": "payment_intent", "amount": plan.price_cents, "currency": "eur",
                "customer": f"cus_bench_{state['account_id']}", "payment_method": f"pm_bench_{state['card_id']}",
                "status": "succeeded" if status == "succeeded" else "requires_payment_method",
                "metadata": {"payment_id": str(payment_id), "account_id": str(state["account_id"])},
            }  # fmt: skip
            self._webhook_event(state, "payment_intent.created", intent_object, created_at, intent_id=intent_id)
            outcome = "payment_intent.succeeded" if status == "succeeded" else "payment_intent.payment_failed"
            self._webhook_event(state, outcome, intent_object, settled, intent_id=intent_id, status="processed")
            if status == "succeeded":
                charge = {"id": f"ch_bench_{payment_id}", "object": "charge", "payment_intent": intent_id}
                self._webhook_event(state, "charge.succeeded", charge, settled, intent_id=intent_id)
        return payment_id

    def _session(self, state, open_lots, at, minutes):
        usable = sorted(
            (lot for lot in open_lots if lot.remaining > 0 and lot.purchased_at <= at < lot.expires_at),
            key=lambda lot: (lot.expires_at, lot.id),
        )
        if sum(lot.remaining for lot in usable) < minutes:
            return False
        usage_id = self.new_id(self.m.Usage)
        tutor, subject = self.rng.choice(TUTORS)
        recorded_at = at + timedelta(hours=1)
        usage = (usage_id, state["account_id"], self.at(at), minutes, tutor, subject, self.at(recorded_at))
        self.add(self.m.Usage, usage)
        needed = minutes
        for lot in usable:
            drawn = min(lot.remaining, needed)
            self._entry(state, lot, "usage", -drawn, at, recorded_at, usage_id=usage_id)
            needed -= drawn
            if not needed:
                break
        self.counts["sessions"] += 1
        return True

    def _refund(self, state, lot, at):
        """Half of a payment refunded an hour later, with half of its hours taken back."""
        m = self.m
        plan = lot.plan
        refund_id = self.new_id(m.Refund)
        cents, minutes = plan.price_cents // 2, plan.minutes // 2
        reason = f"Refund re_bench_{refund_id}"
        self._entry(state, lot, "reversal", -minutes, at, at, reason=reason)
        self.add(
            m.Refund,
            (refund_id, lot.payment_id, f"re_bench_{refund_id}", cents, "EUR", "succeeded", minutes, minutes,
             "Requested by the student", self.staff_id, self.at(at), self.at(at)),
        )  # fmt: skip
        self.add(
            m.AuditEntry,
            (self.new_id(m.AuditEntry), self.staff_id, STAFF_EMAIL, "refund.create", "refund", str(refund_id),
             f"Refund {refund_id}", state["account_id"], lot.payment_id, "{}", json.dumps({"amount_cents": cents}),
             "Requested by the student", "127.0.0.1", self.at(at)),
        )  # fmt: skip
        snapshot = self.parties | {
            "student_name": state["name"], "student_email": state["email"],
            "description": f"Refund for {plan.name}", "corrects": "", "amount_cents": cents, "currency": "EUR",
            "amount": self.money_text(cents, "EUR"), "hours_reversed": self.hours_text(minutes),
            "hours_not_reversed": "", "refund": f"re_bench_{refund_id}", "payment_intent": f"pi_bench_{lot.payment_id}",
        }  # fmt: skip
        self._document(state, "credit_note", at, snapshot, refund_id=refund_id)
        self.counts["refunds"] += 1

    def _receipt(self, state, plan, lot, payment_id, at):
        local = at.astimezone(_zone(self.tz))
        snapshot = self.parties | {
            "student_name": state["name"], "student_email": state["email"],
            "description": f"{plan.name}: {self.hours_text(plan.minutes)} of tutoring", "plan": plan.name,
            "minutes": plan.minutes, "hours": self.hours_text(plan.minutes),
            "unit_price": self.money_text(plan.price_per_hour_cents, "EUR"),
            "amount_cents": plan.price_cents, "currency": "EUR",
            "amount": self.money_text(plan.price_cents, "EUR"), "card": "Visa 4242",
            "paid_at": local.strftime("%d %b %Y, %H:%M"), "payment_intent": f"pi_bench_{payment_id}",
            "expires": lot.expires_at.astimezone(_zone(self.tz)).strftime("%d %b %Y"),
            "balance_after": self.hours_text(state["balance"]),
        }  # fmt: skip
        self._document(state, "receipt", at, snapshot, payment_id=payment_id)

    def _document(self, state, kind, at, snapshot, *, payment_id=None, refund_id=None):
        year = at.astimezone(_zone(self.tz)).year
        self.sequences[(kind, year)] += 1
        sequence = self.sequences[(kind, year)]
        number = f"{year}-{sequence:06d}" if kind == "receipt" else f"CN-{year}-{sequence:06d}"
        snapshot = snapshot | {"issued_at": at.astimezone(_zone(self.tz)).strftime("%d %b %Y")}
        self.add(
            self.m.Receipt,
            (self.new_id(self.m.Receipt), kind, number, year, sequence, state["account_id"], payment_id, refund_id,
             self.at(at), json.dumps(snapshot), "", self.at(at + timedelta(minutes=1))),
        )  # fmt: skip

    def _notification(self, state, kind, key, subject_id, at, title, body):
        from alerts.models import Notification

        self.add(
            Notification,
            (self.new_id(Notification), state["user_id"], kind, title, body, key, self.at(at),
             self.at(at + timedelta(hours=6)), "sent", 1, subject_id),
        )  # fmt: skip

    def _webhook_event(self, state, event_type, data_object, at, *, intent_id="", status="ignored"):
        from billing import samples

        self.event_number += 1
        event_id = f"evt_bench{self.event_number:09d}"
        if self.rng.random() < 0.0005:
            status = "failed"  # the console's "needs attention" counts find a few
        payload = samples.event(event_type, data_object, event_id=event_id, created=int(at.timestamp()))
        received = at + timedelta(seconds=1)
        self.add(
            self.m.WebhookEvent,
            (self.new_id(self.m.WebhookEvent), event_id, event_type, False, "2024-06-20", json.dumps(payload),
             intent_id or "", self.at(at), "webhook", status, 1,
             "ProviderUnavailable: the payment provider did not answer." if status == "failed" else "",
             self.at(received), self.at(received), self.at(received + timedelta(milliseconds=40)), 40),
        )  # fmt: skip
        self.counts["webhook_events"] += 1

    def _in_flight(self, state, joined):
        """One payment per student whose answer never came: what the reconciliation job settles.
        70 % processing with a PaymentIntent id, 10 % processing without one (the request died before
        Stripe answered), 20 % waiting for a 3-D Secure check abandoned more than a day ago."""
        rng, now = self.rng, self.now
        plan = rng.choice(self.plans)
        roll = rng.random()
        if roll < 0.8:
            created_at = max(now - timedelta(minutes=rng.uniform(5, 600)), joined + timedelta(hours=1))
            self._payment(state, plan, "processing", created_at, kind="top_up", intent=roll < 0.7)
        else:
            created_at = max(now - timedelta(hours=rng.uniform(25, 72)), joined + timedelta(hours=1))
            self._payment(state, plan, "requires_action", created_at, kind="renewal")

    # ---- the rest of the data -------------------------------------------------------------------

    def top_up(self):
        """Failed payments and Stripe events on random students until the scale's totals are reached
        (the simulation makes fewer than the totals on purpose)."""
        rng, now = self.rng, self.now
        payments = sum(value for key, value in self.counts.items() if key.startswith("payments_"))
        for _ in range(max(0, self.scale.payments - payments)):
            account_id, user_id, card_id, _, joined = rng.choice(self.students)
            state = {"account_id": account_id, "user_id": user_id, "card_id": card_id}
            at = joined + (now - joined) * rng.random()
            self._payment(state, rng.choice(self.plans), "failed", at)
        while self.counts["webhook_events"] < self.scale.webhook_events:
            account_id, user_id, card_id, customer_id, joined = rng.choice(self.students)
            at = joined + (now - joined) * rng.random()
            state = {"account_id": account_id}
            if rng.random() < 0.5:
                self._webhook_event(state, "customer.updated", {"id": customer_id, "object": "customer"}, at)
            else:
                card = {"id": f"pm_bench_{card_id}", "object": "payment_method", "customer": customer_id}
                self._webhook_event(state, "payment_method.updated", card, at, status="processed")

    def console_history(self):
        """Fraud flags and open disputes: the console's queues, in proportion."""
        m, rng = self.m, self.rng
        for account_id, *_rest, joined in rng.sample(self.students, max(1, len(self.students) // 200)):
            flag_id = self.new_id(m.FraudFlag)
            status = rng.choice(["open", "cleared"])
            at = joined + timedelta(days=1)
            resolved_at, resolved_by = (self.at(at), self.staff_id) if status == "cleared" else (None, None)
            self.add(
                m.FraudFlag,
                (flag_id, account_id, "attempts", f"attempts:{account_id}:bench", json.dumps({"attempts": 6}),
                 "rule", True, status, resolved_at, resolved_by, self.at(at), self.at(at)),
            )  # fmt: skip
        self.counts["fraud_flags"] = len(self.rows[m.FraudFlag])

    # ---- writing --------------------------------------------------------------------------------

    COLUMNS = {
        "portal.User": ["id", "password", "is_superuser", "first_name", "last_name", "is_staff", "is_active",
                        "date_joined", "email"],
        "account.EmailAddress": ["id", "user_id", "email", "verified", "primary"],
        "billing.PaymentMethod": ["id", "account_id", "stripe_payment_method_id", "brand", "last4", "exp_month",
                                  "exp_year", "is_default", "created_at"],
        "billing.Account": ["id", "user_id", "stripe_customer_id", "balance_minutes", "low_balance_threshold_minutes",
                            "created_at"],
        "billing.Lot": ["id", "account_id", "plan_id", "name", "minutes_purchased", "minutes_remaining", "price_cents",
                        "currency", "purchased_at", "expires_at", "expired_at"],
        "billing.Usage": ["id", "account_id", "occurred_at", "minutes", "tutor", "subject", "recorded_at"],
        "billing.LedgerEntry": ["id", "account_id", "lot_id", "kind", "minutes", "balance_after", "usage_id", "reason",
                                "occurred_at", "recorded_at"],
        "billing.Payment": ["id", "account_id", "plan_id", "kind", "renewed_lot_id", "amount_cents", "currency",
                            "minutes", "validity_days", "payment_method_id", "status", "idempotency_key",
                            "stripe_payment_intent_id", "failure_code", "failure_message", "lot_id", "created_at",
                            "updated_at", "settled_at"],
        "billing.Refund": ["id", "payment_id", "stripe_refund_id", "amount_cents", "currency", "status",
                           "minutes_requested", "minutes_reversed", "reason", "requested_by_id", "created_at",
                           "updated_at"],
        "billing.AuditEntry": ["id", "actor_id", "actor_email", "action", "target_type", "target_id", "target_label",
                               "account_id", "payment_id", "before", "after", "reason", "ip_address", "created_at"],
        "billing.Receipt": ["id", "kind", "number", "year", "sequence", "account_id", "payment_id", "refund_id",
                            "issued_at", "snapshot", "pdf", "emailed_at"],
        "alerts.Notification": ["id", "recipient_id", "kind", "stored_title", "stored_body", "dedupe_key",
                                "created_at", "read_at", "email_status", "email_attempts", "subject_id"],
        "billing.WebhookEvent": ["id", "stripe_event_id", "type", "livemode", "api_version", "payload",
                                 "payment_intent_id", "stripe_created_at", "source", "status", "attempts",
                                 "last_error", "received_at", "claimed_at", "processed_at", "processing_ms"],
        "billing.FraudFlag": ["id", "account_id", "rule", "dedupe_key", "evidence", "fraud_type", "actionable",
                              "status", "resolved_at", "resolved_by_id", "created_at", "updated_at"],
    }  # fmt: skip

    def flush(self):
        """Write every row built so far, parents first, in one transaction."""
        with transaction.atomic():
            for label in self.COLUMNS:
                model = _model(label)
                rows = self.rows.pop(model, None)
                if rows:
                    _insert(model, self.COLUMNS[label], rows)
                    self.counts[f"rows_{model._meta.db_table}"] += len(rows)


def _model(label):
    from django.apps import apps

    return apps.get_model(label)


def _insert(model, columns, rows):
    """Insert rows (tuples in `columns` order). Columns left out take their field's default (or NULL,
    or now for auto timestamps), so a field added later with a default needs no change here."""
    from django.utils import timezone

    meta = model._meta
    given = {meta.get_field(name).column for name in columns}
    extra_columns, extra_values = [], []
    for field in meta.concrete_fields:
        if field.column in given:
            continue
        if field.has_default():
            value = field.get_default()
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = timezone.now()
        elif field.null:
            value = None
        elif field.blank and field.empty_strings_allowed:
            value = ""
        else:
            raise ValueError(f"{meta.label}.{field.name} needs a value in the bench seeder")
        extra_columns.append(field.column)
        extra_values.append(field.get_db_prep_save(value, connection))
    all_columns = [meta.get_field(name).column for name in columns] + extra_columns
    if extra_values:
        extra = tuple(extra_values)
        rows = [row + extra for row in rows]
    quoted = ", ".join(connection.ops.quote_name(column) for column in all_columns)
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(all_columns))
            cursor.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({placeholders})", rows)


@functools.cache
def _zone(name):
    return ZoneInfo(name)


def _password_hash():
    from django.contrib.auth.hashers import make_password

    return make_password(PASSWORD)


def _staff_member():
    """A Finance staff member with a verified email and TOTP, as the console requires."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.totp.internal.auth import TOTP
    from django.contrib.auth.models import Group

    from portal.models import User

    user = User.objects.create_user(STAFF_EMAIL, PASSWORD, is_staff=True, first_name="Fiona", last_name="Finance")
    EmailAddress.objects.create(user=user, email=STAFF_EMAIL, verified=True, primary=True)
    user.groups.add(Group.objects.get(name="Finance"))
    TOTP.activate(user, TOTP_SECRET)
    return user


def seed(scale, *, progress=print):
    """Fill an empty, migrated bench database. Returns the row counts and timings."""
    from django.utils import timezone

    from billing.models import Plan, ReceiptCounter

    started = time.monotonic()
    now = timezone.now()
    seeder = Seeder(scale, now=now)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            # Only for this connection while loading (not stored in the file): the site measured
            # later runs with SQLite's defaults.
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("PRAGMA cache_size = -262144")
    with transaction.atomic():
        seeder.staff_id = _staff_member().pk
        seeder.plans = [Plan.objects.create(**spec) for spec in PLANS]
    seeder.student(
        email=LONG_HISTORY_EMAIL,
        first_name="Lena",
        last_name="Longhistory",
        history_days=scale.long_history_days,
        gap_days=scale.long_history_gap_days,
        plan_weights=[0, 0, 1],
    )
    long_history_sessions = seeder.counts["sessions"]
    for number in range(1, scale.students):
        seeder.student(
            email=f"student{number:05d}@bench.example.com",
            first_name=seeder.rng.choice(FIRST_NAMES),
            last_name=seeder.rng.choice(LAST_NAMES),
            history_days=seeder.rng.uniform(*scale.history_days),
            gap_days=scale.session_gap_days,
            plan_weights=[1, 2, 1],
        )
        if number % STUDENTS_PER_TRANSACTION == 0:
            seeder.flush()
            progress(f"  seeded {number:,} of {scale.students:,} students ({time.monotonic() - started:.0f} s)")
    seeder.top_up()
    seeder.console_history()
    seeder.flush()
    with transaction.atomic():
        ReceiptCounter.objects.bulk_create(
            ReceiptCounter(series=kind, year=year, last_number=last) for (kind, year), last in seeder.sequences.items()
        )
    _after_load()
    counts = dict(seeder.counts)
    counts["long_history_sessions"] = long_history_sessions
    counts["seconds"] = round(time.monotonic() - started, 1)
    return counts


def _after_load():
    """PostgreSQL: move the id sequences past the ids chosen here, then VACUUM ANALYZE, as autovacuum
    does soon after a bulk insert in production (statistics, and the visibility map that index-only
    scans need). SQLite gets no ANALYZE: nothing in production would run one."""
    if connection.vendor != "postgresql":
        return
    from django.apps import apps
    from django.core.management.color import no_style

    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), apps.get_models()):
            cursor.execute(statement)
        cursor.execute("VACUUM ANALYZE")  # autocommit: VACUUM cannot run inside a transaction


def bench_database_verify():
    """The ledger's invariants over every account, as `manage.py ledger_check` checks them, plus the
    running balance. Returns (seconds, problems)."""
    from django.db.models import F, OuterRef, Subquery

    from billing.models import Account, LedgerEntry
    from billing.selectors import accounts_out_of_balance

    started = time.monotonic()
    problems = accounts_out_of_balance().count()
    last_balance = LedgerEntry.objects.filter(account=OuterRef("pk")).order_by("-id").values("balance_after")[:1]
    problems += (
        Account.objects.annotate(last=Subquery(last_balance))
        .filter(last__isnull=False)
        .exclude(last=F("balance_minutes"))
        .count()
    )
    return round(time.monotonic() - started, 2), problems


def bench_database_build(scale, *, progress=print):
    """Migrate the (new, empty: see bench_data_reset) bench database and seed it. Returns the counts."""
    from django.core.management import call_command
    from huey.contrib.djhuey import HUEY

    HUEY.flush()  # RedisHuey: the bench's own queue may hold tasks from an earlier run
    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    progress(f"  migrated in {time.monotonic() - started:.1f} s")
    counts = seed(scale, progress=progress)
    counts["verify_seconds"], counts["ledger_problems"] = bench_database_verify()
    if counts["ledger_problems"]:
        raise RuntimeError(f"The seeded ledger is inconsistent on {counts['ledger_problems']} accounts.")
    return counts


def main():
    from bench.environment import bench_data_reset, bench_environment, django_setup

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    args = parser.parse_args()
    env = bench_environment(
        secret_key=f"bench-{secrets.token_urlsafe(32)}",
        static_root="/nonexistent",
        stripe_api_base="http://127.0.0.1:9",
    )
    bench_data_reset(env["DATABASE_URL"])
    django_setup(env)
    counts = bench_database_build(SCALES[args.scale])
    for key, value in sorted(counts.items()):
        print(f"{key:>40}: {value:,}" if isinstance(value, int) else f"{key:>40}: {value}")


if __name__ == "__main__":
    main()
