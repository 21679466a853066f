"""Property-based: any sequence of ledger operations keeps the books exact.

A state machine drives random credits, sessions, clock moves, expiry runs, adjustments and
reversals against the real ledger, and checks it against a plain model of lots after every step:
balance == sum(entries) == sum(lot remainders) >= 0, and each lot holds what the model says.
"""

from datetime import timedelta

import pytest
import time_machine
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from billing import ledger
from billing.errors import InsufficientHours, LotExpired
from billing.models import LedgerEntry, Lot
from billing.tests.builders import make_student

START = timezone.now().replace(microsecond=0)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.clock = time_machine.travel(START, tick=False)
        self.traveller = self.clock.start()
        self.account = make_student()
        self.model = {}  # lot id -> {"remaining", "purchased_at", "expires_at", "booked_expired"}

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
        ledger.usage_record(account=self.account, minutes=minutes, occurred_at=occurred_at, tutor="T", subject="S")
        for lot_id in usable:
            drawn = min(self.model[lot_id]["remaining"], minutes)
            self.model[lot_id]["remaining"] -= drawn
            minutes -= drawn

    @rule(hours=st.integers(1, 24 * 60))
    def time_passes(self, hours):
        self.traveller.shift(timedelta(hours=hours))

    @rule()
    def expiry_job_runs(self):
        ledger.lots_expire_due()
        for lot in self.model.values():
            if lot["expires_at"] <= timezone.now():
                lot["remaining"] = 0
                lot["booked_expired"] = True

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
