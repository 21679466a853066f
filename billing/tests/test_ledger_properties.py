"""Property-based: any sequence of ledger operations keeps the books exact.

A state machine drives random credits, sessions, clock moves, expiry runs, adjustments and
reversals against the real ledger, staff's actions on hours (grants, extensions, reopened expiries,
voided sessions, through billing.hours_actions), and subscription grants (a period's invoice paid, told once or
more, crediting its lot) and refunds of them (taking that lot's hours back pro rata), and checks
it against a plain model of lots after every step: balance == sum(entries) == sum(lot remainders)
>= 0, and each lot holds what the model says.
"""

import secrets
from collections import defaultdict
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from billing import hours_actions, ledger, refunds, samples, stripe_gateway
from billing.errors import HoursActionRefused, InsufficientHours, LotExpired
from billing.models import LedgerEntry, Lot, Payment, Subscription, Usage
from billing.subscriptions import period_after, subscription_invoice_settle
from billing.tests.builders import make_staff, make_student, make_subscription_plan

START = timezone.now().replace(microsecond=0)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.clock = time_machine.travel(START, tick=False)
        self.traveller = self.clock.start()
        self.account = make_student()
        self.account.stripe_customer_id = f"cus_{secrets.token_hex(8)}"
        self.account.save(update_fields=["stripe_customer_id"])
        self.model = {}  # lot id -> {"remaining", "purchased_at", "expires_at", "booked_expired", "expired"}
        self.sessions = {}  # usage id -> {lot id: minutes drawn}, while not voided
        self.staff = make_staff(f"staff-{secrets.token_hex(4)}@example.com")
        self.subscription = Subscription.objects.create(
            account=self.account,
            plan=make_subscription_plan(),
            status=Subscription.Status.ACTIVE,
            idempotency_key=secrets.token_hex(16),
            stripe_subscription_id=f"sub_{secrets.token_hex(8)}",
            stripe_item_id=f"si_{secrets.token_hex(8)}",
            current_period_start=START,
            current_period_end=period_after(START, "month", 1),
        )
        self.refunded_cents = defaultdict(int)  # subscription payment id -> cents refunded so far
        self.minutes_stood_for = defaultdict(int)  # ... -> minutes its refunds stood for (taken or short)

    def teardown(self):
        self.clock.stop()

    def usable_lots(self, at):
        lots = [
            (lot["expires_at"], lot_id)
            for lot_id, lot in self.model.items()
            if lot["purchased_at"] <= at < lot["expires_at"] and not lot["booked_expired"] and lot["remaining"] > 0
        ]
        return [lot_id for _, lot_id in sorted(lots)]

    def lot(self, lot_id):
        return Lot.objects.get(pk=lot_id)

    @rule(minutes=st.integers(1, 1200), days_valid=st.integers(1, 120), hours_ago=st.integers(0, 24 * 10))
    def credit(self, minutes, days_valid, hours_ago):
        purchased_at = timezone.now() - timedelta(hours=hours_ago)
        lot = ledger.lot_credit(
            account=self.account,
            name="Plan",
            minutes=minutes,
            purchased_at=purchased_at,
            expires_at=purchased_at + timedelta(days=days_valid),
        )
        self.model[lot.id] = {
            "remaining": minutes,
            "purchased_at": lot.purchased_at,
            "expires_at": lot.expires_at,
            "booked_expired": False,
        }

    @rule(minutes=st.integers(1, 900), hours_ago=st.integers(0, 24 * 20))
    def consume(self, minutes, hours_ago):
        """A session, possibly recorded days after it took place."""
        occurred_at = timezone.now() - timedelta(hours=hours_ago)
        usable = self.usable_lots(occurred_at)
        available = sum(self.model[lot_id]["remaining"] for lot_id in usable)
        if available < minutes:
            with pytest.raises(InsufficientHours):
                ledger.usage_record(
                    account=self.account, minutes=minutes, occurred_at=occurred_at, tutor="T", subject="S"
                )
            return
        usage = ledger.usage_record(
            account=self.account, minutes=minutes, occurred_at=occurred_at, tutor="T", subject="S"
        )
        self.sessions[usage.pk] = {}
        for lot_id in usable:
            drawn = min(self.model[lot_id]["remaining"], minutes)
            if drawn:
                self.model[lot_id]["remaining"] -= drawn
                self.sessions[usage.pk][lot_id] = drawn
            minutes -= drawn

    @rule(hours=st.integers(1, 24 * 60))
    def time_passes(self, hours):
        self.traveller.shift(timedelta(hours=hours))

    @rule()
    def expiry_job_runs(self):
        ledger.lots_expire_due()
        for lot in self.model.values():
            if lot["expires_at"] <= timezone.now() and not lot["booked_expired"]:
                lot["expired"] = lot["remaining"]  # what a reopening gives back
                lot["expired_at"] = timezone.now()
                lot["remaining"] = 0
                lot["booked_expired"] = True

    def key(self):
        return secrets.token_urlsafe(18)

    @rule(minutes=st.integers(1, 1200), days_valid=st.integers(1, 120))
    def staff_grant(self, minutes, days_valid):
        lot = hours_actions.hours_grant(
            account=self.account,
            name="Goodwill",
            minutes=minutes,
            expires_at=timezone.now() + timedelta(days=days_valid),
            reason="Goodwill",
            actor=self.staff,
            key=self.key(),
        )
        self.model[lot.id] = {
            "remaining": minutes,
            "purchased_at": lot.purchased_at,
            "expires_at": lot.expires_at,
            "booked_expired": False,
        }

    @precondition(lambda self: self.model)
    @rule(data=st.data(), days=st.integers(1, 90))
    def staff_extend(self, data, days):
        """One lot to a later date: a usable one moves, an expired one within the window reopens
        (its expired minutes come back), an older one is refused."""
        lot_id = data.draw(st.sampled_from(sorted(self.model)))
        lot = self.model[lot_id]
        now = timezone.now()
        new_expiry = max(now, lot["expires_at"]) + timedelta(days=days)
        window = timedelta(days=django_settings.PORTAL_REOPEN_WINDOW_DAYS)
        expired = lot["booked_expired"] or lot["expires_at"] <= now
        # A lot whose purchase was refunded after its expiry was booked stays closed.
        refunded_since = lot["booked_expired"] and any(at >= lot["expired_at"] for at in lot.get("refunds_at", []))
        if expired and (lot["expires_at"] <= now - window or refunded_since):
            with pytest.raises(HoursActionRefused):
                self.extend(lot_id, new_expiry)
            return
        self.extend(lot_id, new_expiry)
        if lot["booked_expired"]:
            lot["remaining"] = lot.pop("expired")
            lot["booked_expired"] = False
        lot["expires_at"] = new_expiry

    def extend(self, lot_id, expires_at):
        hours_actions.lot_extend(
            lot=self.lot(lot_id), expires_at=expires_at, reason="Extension", actor=self.staff, key=self.key()
        )

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def staff_void(self, data):
        """A session's minutes go back to its lots; a lot's share expired since comes back in a new lot."""
        usage_id = data.draw(st.sampled_from(sorted(self.sessions)))
        drawn = self.sessions.pop(usage_id)
        now = timezone.now()
        known = set(self.model)
        hours_actions.usage_void(
            usage=Usage.objects.get(pk=usage_id), reason="Mistake", actor=self.staff, key=self.key(), late_allowed=True
        )
        restored = []
        for lot_id, minutes in drawn.items():
            lot = self.model[lot_id]
            if lot["booked_expired"] or lot["expires_at"] <= now:
                restored.append(minutes)
            else:
                lot["remaining"] += minutes
        new_lots = Lot.objects.filter(account=self.account).exclude(pk__in=known)
        assert sorted(lot.minutes_remaining for lot in new_lots) == sorted(restored)
        for lot in new_lots:
            assert lot.source == Lot.Source.RESTORED
            self.model[lot.id] = {
                "remaining": lot.minutes_remaining,
                "purchased_at": lot.purchased_at,
                "expires_at": lot.expires_at,
                "booked_expired": False,
            }

    @precondition(lambda self: self.model)
    @rule(data=st.data(), minutes=st.integers(-900, 900).filter(bool))
    def adjust(self, data, minutes):
        lot_id = data.draw(st.sampled_from(sorted(self.model)))
        lot = self.model[lot_id]
        if lot["expires_at"] <= timezone.now():
            expected = LotExpired
        elif lot["remaining"] + minutes < 0:
            expected = InsufficientHours
        else:
            ledger.lot_adjust(lot=self.lot(lot_id), minutes=minutes, reason="Correction")
            lot["remaining"] += minutes
            return
        with pytest.raises(expected):
            ledger.lot_adjust(lot=self.lot(lot_id), minutes=minutes, reason="Correction")

    @precondition(lambda self: self.model)
    @rule(data=st.data(), minutes=st.integers(1, 900))
    def reverse(self, data, minutes):
        lot_id = data.draw(st.sampled_from(sorted(self.model)))
        lot = self.model[lot_id]
        if lot["expires_at"] <= timezone.now() or lot["remaining"] < minutes:
            with pytest.raises((LotExpired, InsufficientHours)):
                ledger.lot_reverse(lot=self.lot(lot_id), minutes=minutes, reason="Refund")
            return
        ledger.lot_reverse(lot=self.lot(lot_id), minutes=minutes, reason="Refund")
        lot["remaining"] -= minutes

    @rule(
        minutes=st.integers(1, 1200),
        price_cents=st.integers(100, 30000),
        rollover_periods=st.integers(0, 2),
        days_into_period=st.integers(0, 70),
        deliveries=st.integers(1, 3),
    )
    def subscription_period_paid(self, minutes, price_cents, rollover_periods, days_into_period, deliveries):
        """A period's invoice paid at Stripe and told `deliveries` times: one lot of the plan's hours,
        expiring `rollover_periods` periods after the period (a minute on at least, if it is paid that
        late)."""
        plan = make_subscription_plan(
            minutes=minutes,
            price_cents=price_cents,
            rollover_periods=rollover_periods,
            stripe_price_id=f"price_{secrets.token_hex(8)}",
        )
        start = timezone.now() - timedelta(days=days_into_period)
        end = period_after(start, "month", 1)
        period = (int(start.timestamp()), int(end.timestamp()))
        line = samples.invoice_line(
            self.subscription, amount_cents=price_cents, period=period, price_id=plan.stripe_price_id
        )
        invoice = stripe_gateway.invoice_read(
            samples.invoice(self.subscription, period=period, amount_cents=price_cents, lines=[line])
        )
        for _ in range(deliveries):
            payment = subscription_invoice_settle(invoice=invoice)
        assert Payment.objects.filter(stripe_invoice_id=invoice.id).count() == 1
        lot = payment.lot
        expires_at = max(
            period_after(end.replace(microsecond=0), "month", rollover_periods), timezone.now() + timedelta(minutes=1)
        )
        assert (lot.minutes_purchased, lot.price_cents, lot.expires_at) == (minutes, price_cents, expires_at)
        self.model[lot.id] = {
            "remaining": minutes,
            "purchased_at": lot.purchased_at,
            "expires_at": lot.expires_at,
            "booked_expired": False,
            "payment": payment.pk,
        }

    @precondition(lambda self: any("payment" in lot for lot in self.model.values()))
    @rule(data=st.data(), percent=st.integers(1, 100))
    def subscription_period_refunded(self, data, percent):
        """A refund of part of a period's invoice (from the Dashboard): the share of the period's
        hours that all its refunds so far stand for, less what the earlier ones stood for, taken
        back from its lot as far as it has unused hours; the rest is recorded as short."""
        lot_id = data.draw(st.sampled_from(sorted(lot_id for lot_id, lot in self.model.items() if "payment" in lot)))
        lot = self.model[lot_id]
        payment = Payment.objects.get(pk=lot["payment"])
        left = payment.amount_cents - self.refunded_cents[payment.pk]
        if left == 0:
            return
        amount = max(1, left * percent // 100)
        refunds.refund_record(
            payment=payment,
            stripe_refund_id=f"re_{secrets.token_hex(8)}",
            amount_cents=amount,
            currency=payment.currency,
            status="succeeded",
        )
        self.refunded_cents[payment.pk] += amount
        lot.setdefault("refunds_at", []).append(timezone.now())
        share = (payment.minutes * self.refunded_cents[payment.pk] + payment.amount_cents // 2) // payment.amount_cents
        due = max(share - self.minutes_stood_for[payment.pk], 0)
        unused = 0 if lot["booked_expired"] or lot["expires_at"] <= timezone.now() else lot["remaining"]
        lot["remaining"] -= min(due, unused)
        self.minutes_stood_for[payment.pk] += due

    @invariant()
    def books_balance(self):
        self.account.refresh_from_db()
        entries = LedgerEntry.objects.filter(account=self.account).aggregate(total=Sum("minutes"))["total"] or 0
        remainders = dict(Lot.objects.filter(account=self.account).values_list("id", "minutes_remaining"))
        assert self.account.balance_minutes == entries == sum(remainders.values())
        assert self.account.balance_minutes >= 0
        assert remainders == {lot_id: lot["remaining"] for lot_id, lot in self.model.items()}

    @invariant()
    def every_entrys_running_balance_is_its_prefix_sum(self):
        running = 0
        for minutes, balance_after in LedgerEntry.objects.filter(account=self.account).values_list(
            "minutes", "balance_after"
        ):
            running += minutes
            assert balance_after == running


@pytest.mark.django_db
def test_random_sequences_of_ledger_operations_keep_the_books_exact():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
