"""Refunds at their edges: a status that never moves back, a refund that fails after its credit note,
partial refunds whose hours add up exactly (from the Dashboard and at the console's default), console
refunds left "requested" by a lost request (and when they are left for staff instead of sent again),
and our own failures, which Stripe's word overrides.

Refund events are signed here in Stripe's shapes (localstripe emits none); console refunds are really
made by localstripe over HTTP, and a lost or held request is faked at the HTTP boundary.
"""

import html
import logging
import re
import threading
import time
from datetime import timedelta
from fractions import Fraction

import pytest
import requests
import time_machine
from django.core import mail
from django.db import connection
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import samples, stripe_gateway
from billing.errors import ProviderSearchIncomplete, ProviderUnavailable
from billing.models import LedgerEntry, Receipt, Refund
from billing.receipts import receipt_pdf
from billing.refunds import (
    NOT_SENT_OTHER_REFUND,
    NOT_SENT_OVER_PAID,
    NOT_SENT_TOO_OLD,
    STRIPE_REFUSED,
    RefundBeingSent,
    RefundRefused,
    refund_defaults,
    refund_issue,
    refund_record,
    refund_send,
    refunds_reconcile,
)
from billing.tasks import reconcile_refunds
from billing.tests.builders import make_paid_payment, make_plan, make_staff, use
from billing.tests.localstripe import SECRET_KEY
from billing.tests.network import LossyProxy
from billing.tests.pdfs import pdf_text

pytestmark = pytest.mark.django_db

YEAR = timezone.localdate().year
REASON = "Course cancelled; agreed by email."
Status = Refund.Status


@pytest.fixture
def paid(localstripe):
    payment = make_paid_payment(localstripe)
    assert payment.lot.minutes_remaining == 600  # €150.00 for 10 h
    return payment


@pytest.fixture
def staff(db):
    return make_staff()


def lot_minutes(payment):
    payment.lot.refresh_from_db()
    return payment.lot.minutes_remaining


def stripe_refunds(localstripe, payment):
    return localstripe.get("/v1/refunds", payment_intent=payment.stripe_payment_intent_id)["data"]


def credit_note_series():
    """The documents of the credit-note series, in number order: (number, kind, signed amount)."""
    documents = Receipt.objects.exclude(kind=Receipt.Kind.RECEIPT).order_by("sequence")
    return [
        (
            doc.number,
            doc.kind,
            -doc.snapshot["amount_cents"] if doc.kind == "credit_note" else doc.snapshot["amount_cents"],
        )
        for doc in documents
    ]


def ledger_moves(payment):
    return list(
        LedgerEntry.objects.filter(lot=payment.lot).exclude(kind="credit").order_by("pk").values_list("kind", "minutes")
    )


def cn(sequence):
    return f"CN-{YEAR}-{sequence:06d}"


class TestStatusOnlyMovesForward:
    @pytest.mark.parametrize(
        ("current", "new", "applied"),
        [
            (Status.REQUESTED, Status.PENDING, True),
            (Status.REQUESTED, Status.FAILED, True),
            (Status.REQUIRES_ACTION, Status.PENDING, True),
            (Status.PENDING, Status.SUCCEEDED, True),
            (Status.SUCCEEDED, Status.FAILED, True),  # the bank sent the money back: real at Stripe
            (Status.PENDING, Status.CANCELED, True),
            (Status.SUCCEEDED, Status.PENDING, False),
            (Status.SUCCEEDED, Status.REQUIRES_ACTION, False),
            (Status.SUCCEEDED, Status.SUCCEEDED, False),
            (Status.PENDING, Status.REQUIRES_ACTION, False),
            (Status.FAILED, Status.SUCCEEDED, False),
            (Status.FAILED, Status.PENDING, False),
            (Status.FAILED, Status.CANCELED, False),
            (Status.CANCELED, Status.FAILED, False),
            (Status.PENDING, Status.REQUESTED, False),
        ],
    )
    def test_a_status_is_taken_only_when_it_is_further_along(self, current, new, applied):
        assert current.may_become(new) is applied

    def test_a_late_pending_after_succeeded_leaves_the_refund_succeeded(self, paid, send):
        refund = samples.refund(paid, amount_cents=7500)

        send(
            samples.event("refund.updated", refund),
            samples.event("refund.created", {**refund, "status": "pending"}),
        )

        recorded = Refund.objects.get()
        assert (recorded.status, recorded.minutes_reversed) == ("succeeded", 300)
        assert lot_minutes(paid) == 300
        assert Receipt.objects.filter(kind="credit_note").count() == 1

    def test_a_late_requires_action_between_two_succeeded_snapshots_takes_the_hours_once(self, paid, send):
        refund = samples.refund(paid, amount_cents=7500)

        send(
            samples.event("refund.created", refund),
            samples.event("charge.refund.updated", {**refund, "status": "requires_action"}),
            samples.event("charge.refunded", samples.charge_refunded(paid, [refund])),
        )

        assert Refund.objects.get().status == "succeeded"
        assert ledger_moves(paid) == [("reversal", -300)]
        assert lot_minutes(paid) == 300

    def test_a_failed_refund_ignores_a_late_succeeded(self, paid, send):
        refund = samples.refund(paid, amount_cents=7500)

        send(
            samples.event("refund.updated", {**refund, "status": "failed"}),
            samples.event("refund.created", refund),
        )

        assert Refund.objects.get().status == "failed"
        assert lot_minutes(paid) == 600
        assert not Receipt.objects.exclude(kind="receipt").exists()


class TestFailureAfterTheCreditNote:
    def fail_after_success(self, paid, send, *, amount_cents=7500):
        refund = samples.refund(paid, amount_cents=amount_cents, refund_id="re_fails_later")
        failed = {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}
        send(samples.event("refund.created", refund))
        return refund, failed

    def test_the_credit_note_is_cancelled_once_and_the_hours_come_back(self, paid, send):
        refund, failed = self.fail_after_success(paid, send)
        assert lot_minutes(paid) == 300

        # Duplicated and reordered: told twice it failed, then a stale "succeeded" listing.
        send(
            samples.event("refund.updated", failed),
            samples.event("refund.updated", failed),
            samples.event("charge.refunded", samples.charge_refunded(paid, [refund])),
            samples.event("charge.refund.updated", failed),
        )

        note = Receipt.objects.get(kind="credit_note")
        cancellation = Receipt.objects.get(kind="cancellation")
        assert (note.number, cancellation.number) == (cn(1), cn(2))
        assert cancellation.cancels == note and note.cancellation == cancellation
        assert (cancellation.account, cancellation.payment, cancellation.refund) == (paid.account, None, None)
        assert credit_note_series() == [(cn(1), "credit_note", -7500), (cn(2), "cancellation", 7500)]
        assert ledger_moves(paid) == [("reversal", -300), ("adjustment", 300)]
        assert lot_minutes(paid) == 600
        recorded = Refund.objects.get()
        assert (recorded.status, recorded.minutes_reversed) == ("failed", 0)

    def test_the_cancellation_reads_as_a_cancellation_of_the_credit_note(self, paid, send):
        use(paid.account, 60)
        refund, failed = self.fail_after_success(paid, send, amount_cents=15000)
        assert lot_minutes(paid) == 0  # 9 h taken back, 1 h had been used

        send(samples.event("refund.updated", failed))

        cancellation = Receipt.objects.get(kind="cancellation")
        text = " ".join(pdf_text(receipt_pdf(receipt=cancellation)).split())
        for expected in (
            f"Credit note cancellation {cn(2)}",
            f"Cancels {cn(1)} Its date ",
            f"Receipt {paid.receipt.number}",
            f"Cancels credit note {cn(1)} in full 9 h +€150.00",
            "Total no longer refunded (EUR) €150.00",
            f"The refund of €150.00 did not go through: the money did not reach your card, so credit note {cn(1)} is "
            "cancelled in full.",
            "Refund reference re_fails_later.",
            "The hours taken back for it (9 h) are back on your balance.",
            paid.stripe_payment_intent_id,
        ):
            assert expected in text, expected
        assert "−€150.00" not in text  # money owed to the student again, not refunded
        assert lot_minutes(paid) == 540
        assert cancellation.filename == f"credit-note-cancellation-{cn(2)}.pdf"
        [email] = [message for message in mail.outbox if cn(2) in message.subject]
        assert email.subject == f"Your credit note cancellation {cn(2)}"
        assert "did not go through" in email.body and cn(1) in email.body

    def test_a_refund_that_fails_before_its_credit_note_needs_no_document(self, paid, send):
        pending = samples.refund(paid, amount_cents=7500, status="pending")

        send(samples.event("refund.created", pending))
        assert lot_minutes(paid) == 300
        send(samples.event("refund.updated", {**pending, "status": "failed"}))

        assert lot_minutes(paid) == 600
        assert not Receipt.objects.exclude(kind="receipt").exists()

    def test_a_second_refund_after_the_failure_gets_its_own_credit_note_and_the_totals_reconcile(self, paid, send):
        _, failed = self.fail_after_success(paid, send)
        send(samples.event("refund.updated", failed))
        assert refund_defaults(payment=paid).refundable_cents == 15000  # the failed money is owed again

        send(samples.event("refund.created", samples.refund(paid, amount_cents=15000, refund_id="re_second")))

        assert credit_note_series() == [
            (cn(1), "credit_note", -7500),
            (cn(2), "cancellation", 7500),
            (cn(3), "credit_note", -15000),
        ]
        assert sum(amount for _, _, amount in credit_note_series()) == -15000  # what really went back
        assert Receipt.objects.get(number=cn(3)).refund.stripe_refund_id == "re_second"
        defaults = refund_defaults(payment=paid)
        assert (defaults.refundable_cents, defaults.unused_minutes) == (0, 0)
        assert ledger_moves(paid) == [("reversal", -300), ("adjustment", 300), ("reversal", -600)]
        assert lot_minutes(paid) == 0

    def test_a_console_refund_that_fails_later_frees_its_money_and_hours_for_another(
        self, localstripe, paid, staff, send
    ):
        first = refund_issue(payment=paid, amount_cents=6000, minutes=240, reason=REASON, actor=staff)
        [made] = stripe_refunds(localstripe, paid)

        send(samples.event("refund.updated", {**made, "status": "failed"}))
        first.refresh_from_db()
        assert (first.status, first.minutes_reversed) == ("failed", 0)
        defaults = refund_defaults(payment=paid)
        assert (defaults.refundable_cents, defaults.unused_minutes) == (15000, 600)
        second = refund_issue(payment=paid, amount_cents=9000, minutes=360, reason=REASON, actor=staff)

        assert (second.status, second.credit_note.number) == ("succeeded", cn(3))
        assert Receipt.objects.get(kind="cancellation").cancels == first.credit_note
        assert refund_defaults(payment=paid).refundable_cents == 6000
        assert lot_minutes(paid) == 240

    def test_the_students_receipts_page_lists_the_cancellation(self, localstripe, student, student_client, send):
        paid = make_paid_payment(localstripe, account=student)
        _, failed = self.fail_after_success(paid, send)
        send(samples.event("refund.updated", failed))
        cancellation = Receipt.objects.get(kind="cancellation")

        text = student_client.get(reverse("student:receipts")).content.decode()

        assert f"Credit note cancellation {cn(2)}" in text
        assert f"Cancels credit note {cn(1)}: the refund failed" in text
        assert "−€75.00" in text and "€75.00" in text.replace("−€75.00", "", 1)
        assert f'href="{reverse("student:receipt_download", args=[cancellation.pk])}"' in text

    def test_the_consoles_payment_page_lists_the_cancellation(self, localstripe, paid, finance_client, send):
        _, failed = self.fail_after_success(paid, send)
        send(samples.event("refund.updated", failed))
        cancellation = Receipt.objects.get(kind="cancellation")

        text = finance_client.get(reverse("console:payment", args=[paid.pk])).content.decode()

        assert f"Credit note cancellation {cn(2)}" in text
        assert reverse("console:receipt_download", args=[cancellation.pk]) in text
        assert finance_client.get(reverse("console:receipt_download", args=[cancellation.pk])).status_code == 200


def half_up(value):
    return int(value + Fraction(1, 2))


class TestPartialRefundsAddUp:
    def test_twenty_small_dashboard_refunds_take_back_the_share_of_their_sum(self, paid, send):
        send(*[samples.event("refund.created", samples.refund(paid, amount_cents=13)) for _ in range(20)])

        # 20 x €0.13 is €2.60 of €150.00: 10.4 minutes of 600, so 10; not 20 x round(0.52).
        assert Refund.objects.aggregate(total=Sum("minutes_reversed"))["total"] == 10
        assert lot_minutes(paid) == 590

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        minutes=st.integers(30, 1200),
        price_cents=st.integers(100, 60000),
        shares=st.lists(st.integers(1, 1000), min_size=1, max_size=25),
        used_share=st.one_of(st.just(0), st.integers(0, 100)),
        finish_in_full=st.booleans(),
    )
    def test_the_minutes_taken_back_are_always_the_share_of_the_amount_refunded_so_far(
        self, localstripe, minutes, price_cents, shares, used_share, finish_in_full
    ):
        paid = make_paid_payment(localstripe, plan=make_plan(f"Plan {minutes}/{price_cents}", minutes, price_cents))
        used = minutes * used_share // 100
        if used:
            use(paid.account, used)
        amounts = [max(1, price_cents * share // 10000) for share in shares]
        refunded = 0

        def record(amount, n):
            refund_record(
                payment=paid,
                stripe_refund_id=f"re_{paid.pk}_{n}",
                amount_cents=amount,
                currency="eur",
                status="succeeded",
            )

        for n, amount in enumerate(amounts):
            amount = min(amount, price_cents - refunded)
            if not amount:
                break
            record(amount, n)
            refunded += amount
            share = half_up(Fraction(minutes * refunded, price_cents))
            totals = paid.refunds.aggregate(reversed=Sum("minutes_reversed"), short=Sum("minutes_short"))
            # Taken back where unused; what had been used is recorded as the shortfall.
            assert totals["reversed"] + totals["short"] == share
            assert totals["reversed"] == min(share, minutes - used)
        if finish_in_full and refunded < price_cents:
            record(price_cents - refunded, len(amounts))
            assert paid.refunds.aggregate(total=Sum("minutes_reversed"))["total"] == minutes - used
            assert lot_minutes(paid) == 0


@pytest.fixture
def unreachable(settings, localstripe):
    """Requests to Stripe never leave (nothing listens) until the test points them back at localstripe."""
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    yield
    settings.STRIPE_API_BASE = localstripe.url


def stuck_refund(payment, staff, **amounts):
    """A console refund whose request never reached Stripe: left "requested"."""
    with pytest.raises(ProviderUnavailable) as lost:
        refund_issue(payment=payment, reason=REASON, actor=staff, **amounts)
    return lost.value.refund


def minutes_later(minutes):
    return time_machine.travel(timezone.now() + timedelta(minutes=minutes))


class TestStuckRequestedRefunds:
    def test_a_refund_stripe_made_but_never_answered_is_adopted_not_made_again(
        self, localstripe, paid, staff, settings
    ):
        proxy = LossyProxy(localstripe.url, drop_response=r"^POST /v1/refunds$")
        settings.STRIPE_API_BASE = proxy.url
        refund = stuck_refund(paid, staff, amount_cents=6000, minutes=240)
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url
        [made] = stripe_refunds(localstripe, paid)

        with minutes_later(4):
            settled = refunds_reconcile()
            again = refunds_reconcile()

        assert [r.pk for r in settled] == [refund.pk] and again == []
        assert [r["id"] for r in stripe_refunds(localstripe, paid)] == [made["id"]]
        refund.refresh_from_db()
        assert (refund.status, refund.stripe_refund_id, refund.minutes_reversed) == ("succeeded", made["id"], 240)
        assert ledger_moves(paid) == [("reversal", -240)]
        assert Receipt.objects.filter(kind="credit_note", refund=refund).count() == 1

    def test_a_refund_stripe_never_received_is_sent_once_more(self, localstripe, paid, staff, settings, unreachable):
        refund = stuck_refund(paid, staff, amount_cents=3000, minutes=60)
        settings.STRIPE_API_BASE = localstripe.url

        with minutes_later(4):
            refunds_reconcile()
            refunds_reconcile()

        [made] = stripe_refunds(localstripe, paid)
        assert (made["amount"], made["metadata"]) == (3000, {"portal_refund_id": str(refund.pk)})
        refund.refresh_from_db()
        assert (refund.status, refund.stripe_refund_id, refund.minutes_reversed) == ("succeeded", made["id"], 60)
        assert lot_minutes(paid) == 540

    def test_a_refund_requested_moments_ago_is_left_to_its_own_request(
        self, localstripe, paid, staff, settings, unreachable
    ):
        refund = stuck_refund(paid, staff, amount_cents=3000, minutes=60)
        settings.STRIPE_API_BASE = localstripe.url

        assert refunds_reconcile() == []

        refund.refresh_from_db()
        assert refund.status == "requested" and stripe_refunds(localstripe, paid) == []

    def test_a_refund_stripe_refuses_when_sent_again_is_failed_without_moving_hours(
        self, localstripe, paid, staff, settings, unreachable
    ):
        refund = stuck_refund(paid, staff, amount_cents=3000, minutes=60)
        invalid = {"error": {"type": "invalid_request_error", "message": "Charge ch_1 has been refunded."}}
        proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/refunds$": (400, invalid)})
        settings.STRIPE_API_BASE = proxy.url
        try:
            with minutes_later(4):
                refunds_reconcile()
        finally:
            proxy.close()

        refund.refresh_from_db()
        assert (refund.status, refund.minutes_reversed) == ("failed", 0)
        assert lot_minutes(paid) == 600 and refund_defaults(payment=paid).refundable_cents == 15000

    def test_one_refund_that_cannot_be_reconciled_does_not_hold_up_the_others(
        self, localstripe, staff, settings, caplog
    ):
        first, second = make_paid_payment(localstripe), make_paid_payment(localstripe)
        settings.STRIPE_API_BASE = "http://127.0.0.1:9"
        broken = stuck_refund(first, staff, amount_cents=1000, minutes=0)
        fine = stuck_refund(second, staff, amount_cents=2000, minutes=0)
        outage = {"error": {"type": "api_error", "message": "An unknown error occurred."}}
        listing = rf"^GET /v1/refunds\?payment_intent={re.escape(first.stripe_payment_intent_id)}"
        proxy = LossyProxy(localstripe.url, canned={listing: (500, outage)})
        settings.STRIPE_API_BASE = proxy.url
        try:
            with minutes_later(4), caplog.at_level(logging.ERROR, logger="billing.refunds"):
                settled = refunds_reconcile()
        finally:
            proxy.close()

        assert [r.pk for r in settled] == [fine.pk]
        broken.refresh_from_db()
        fine.refresh_from_db()
        assert (broken.status, fine.status) == ("requested", "succeeded")
        assert f"Could not reconcile refund {broken.pk}" in caplog.text

    def test_the_periodic_job_reconciles_the_stuck_refunds(self, localstripe, paid, staff, settings, unreachable):
        stuck_refund(paid, staff, amount_cents=3000, minutes=60)
        settings.STRIPE_API_BASE = localstripe.url

        with minutes_later(4):
            assert reconcile_refunds.call_local() == 1

        assert Refund.objects.get().status == "succeeded"


class HeldRefunds:
    """In front of localstripe: POST /v1/refunds is held until `release()`, then made; the rest passes."""

    def __init__(self, upstream):
        self.arrived, self.released = threading.Event(), threading.Event()
        self.upstream = upstream
        self.proxy = LossyProxy(upstream, canned={r"^POST /v1/refunds$": self._hold})
        self.url = self.proxy.url

    def _hold(self, body):
        self.arrived.set()
        self.released.wait(timeout=10)
        answer = requests.post(
            f"{self.upstream}/v1/refunds",
            data=body,
            auth=(SECRET_KEY, ""),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=5,
        )
        return answer.status_code, answer.json()

    def release(self):
        self.released.set()

    def close(self):
        self.release()
        self.proxy.close()


@pytest.mark.django_db(transaction=True)
def test_a_refund_whose_request_is_still_on_its_way_is_never_sent_a_second_time(localstripe, settings):
    paid, staff = make_paid_payment(localstripe), make_staff()
    held = HeldRefunds(localstripe.url)
    settings.STRIPE_API_BASE = held.url
    issued = []

    def issue():
        try:
            issued.append(refund_issue(payment=paid, amount_cents=5000, minutes=200, reason=REASON, actor=staff))
        finally:
            connection.close()

    issuing = threading.Thread(target=issue)
    try:
        issuing.start()
        assert held.arrived.wait(timeout=10)
        in_flight = Refund.objects.get()

        with minutes_later(4):  # old enough for the job; its request still running (a slow Stripe)
            assert refunds_reconcile() == []
            with pytest.raises(RefundBeingSent, match="^This refund is being sent to Stripe right now"):
                refund_send(refund=in_flight, actor=staff)
        held.release()
        issuing.join(timeout=10)
    finally:
        held.close()

    assert [r["amount"] for r in stripe_refunds(localstripe, paid)] == [5000]
    [refund] = issued
    assert (refund.status, refund.minutes_reversed) == ("succeeded", 200)
    assert lot_minutes(paid) == 400


def dashboard_refund(localstripe, payment, amount_cents):
    """A refund staff make in the Stripe Dashboard: made at Stripe, with none of our metadata."""
    return localstripe.post("/v1/refunds", payment_intent=payment.stripe_payment_intent_id, amount=amount_cents)


def every_stripe_refund(localstripe, payment):
    return localstripe.get("/v1/refunds", payment_intent=payment.stripe_payment_intent_id, limit=1000)["data"]


def hours_later(hours):
    return time_machine.travel(timezone.now() + timedelta(hours=hours))


class TestStuckRefundsLeftForStaff:
    """A stuck refund is sent again by the job only while nothing else can have refunded its money."""

    def test_a_refund_made_in_the_dashboard_meanwhile_leaves_the_stuck_one_unsent_for_staff(
        self, localstripe, paid, staff, settings, unreachable, send
    ):
        refund = stuck_refund(paid, staff, amount_cents=6000, minutes=240)
        settings.STRIPE_API_BASE = localstripe.url
        dashboard = dashboard_refund(localstripe, paid, 6000)
        send(samples.event("refund.created", dashboard))

        with minutes_later(4):
            settled = refunds_reconcile()

        assert [r["id"] for r in every_stripe_refund(localstripe, paid)] == [dashboard["id"]]
        refund.refresh_from_db()
        assert settled == [refund]
        assert (refund.status, refund.failure_reason, refund.minutes_reversed) == ("failed", NOT_SENT_OTHER_REFUND, 0)
        assert lot_minutes(paid) == 360  # only the Dashboard refund's share of the hours went
        assert refund_defaults(payment=paid).refundable_cents == 9000
        assert Receipt.objects.filter(kind="credit_note").count() == 1

    def test_a_dashboard_refund_whose_event_has_not_reached_us_leaves_it_unsent_too(
        self, localstripe, paid, staff, settings, unreachable
    ):
        refund = stuck_refund(paid, staff, amount_cents=6000, minutes=240)
        settings.STRIPE_API_BASE = localstripe.url
        dashboard = dashboard_refund(localstripe, paid, 2000)

        with minutes_later(4):
            refunds_reconcile()

        assert [r["id"] for r in every_stripe_refund(localstripe, paid)] == [dashboard["id"]]
        refund.refresh_from_db()
        assert (refund.status, refund.failure_reason) == ("failed", NOT_SENT_OTHER_REFUND)
        assert lot_minutes(paid) == 600

    def test_staff_sending_again_what_would_refund_more_than_was_paid_is_refused(
        self, localstripe, paid, staff, settings, unreachable, send
    ):
        refund = stuck_refund(paid, staff, amount_cents=10000, minutes=0)
        settings.STRIPE_API_BASE = localstripe.url
        send(samples.event("refund.created", dashboard_refund(localstripe, paid, 8000)))

        with pytest.raises(RefundRefused, match=f"^{re.escape(NOT_SENT_OVER_PAID)}$"):
            refund_send(refund=refund, actor=staff)

        assert [r["amount"] for r in every_stripe_refund(localstripe, paid)] == [8000]
        refund.refresh_from_db()
        assert (refund.status, refund.failure_reason) == ("failed", NOT_SENT_OVER_PAID)
        assert refund_defaults(payment=paid).refundable_cents == 7000

    @pytest.mark.parametrize(("hours", "sent"), [(23.9, True), (24.1, False)])
    def test_the_job_sends_a_stuck_refund_only_within_24_hours_of_its_request(
        self, localstripe, paid, staff, settings, unreachable, hours, sent
    ):
        refund = stuck_refund(paid, staff, amount_cents=3000, minutes=60)
        settings.STRIPE_API_BASE = localstripe.url

        with hours_later(hours):
            refunds_reconcile()

        refund.refresh_from_db()
        assert len(every_stripe_refund(localstripe, paid)) == (1 if sent else 0)
        if sent:
            assert (refund.status, lot_minutes(paid)) == ("succeeded", 540)
        else:
            assert (refund.status, refund.failure_reason, lot_minutes(paid)) == ("failed", NOT_SENT_TOO_OLD, 600)

    def test_staff_may_still_send_a_refund_the_job_no_longer_sends(
        self, localstripe, paid, staff, settings, unreachable
    ):
        refund = stuck_refund(paid, staff, amount_cents=3000, minutes=60)
        settings.STRIPE_API_BASE = localstripe.url

        with hours_later(30):
            sent = refund_send(refund=refund, actor=staff)

        assert (sent.status, sent.failure_reason, len(every_stripe_refund(localstripe, paid))) == ("succeeded", "", 1)

    def test_the_console_shows_why_a_refund_was_not_sent(
        self, localstripe, paid, staff, settings, unreachable, finance_client
    ):
        stuck_refund(paid, staff, amount_cents=3000, minutes=60)
        settings.STRIPE_API_BASE = localstripe.url
        with hours_later(25):
            refunds_reconcile()

        text = finance_client.get(reverse("console:payment", args=[paid.pk])).content.decode()

        assert f"€30.00, failed ({NOT_SENT_TOO_OLD})" in text
        assert "Send again" not in text


def after_this_second():
    """Wait for the clock's next second: Stripe lists refunds newest first, by their second of creation."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.02)


class TestLookingFirstReadsEveryPage:
    def test_a_lost_refund_behind_a_full_page_of_newer_ones_is_adopted_not_made_again(
        self, localstripe, paid, staff, settings
    ):
        proxy = LossyProxy(localstripe.url, drop_response=r"^POST /v1/refunds$")
        settings.STRIPE_API_BASE = proxy.url
        refund = stuck_refund(paid, staff, amount_cents=6000, minutes=240)
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url
        after_this_second()
        for _ in range(100):  # Stripe's longest page: ours is on the second
            dashboard_refund(localstripe, paid, 1)

        with minutes_later(4):
            refunds_reconcile()

        ours = [r for r in every_stripe_refund(localstripe, paid) if r["metadata"]]
        assert [r["metadata"] for r in ours] == [{"portal_refund_id": str(refund.pk)}]
        refund.refresh_from_db()
        assert (refund.status, refund.stripe_refund_id, refund.minutes_reversed) == ("succeeded", ours[0]["id"], 240)

    def test_the_listing_pages_through_up_to_its_limit_and_says_when_it_stopped_short(self, localstripe, paid):
        for _ in range(101):
            dashboard_refund(localstripe, paid, 1)

        listed = stripe_gateway.refunds_for(paid.stripe_payment_intent_id)

        assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in every_stripe_refund(localstripe, paid))
        assert len(listed) == 101
        with pytest.raises(ProviderSearchIncomplete):
            stripe_gateway.refunds_for(paid.stripe_payment_intent_id, limit=100)


class TestOurOwnFailureYieldsToStripe:
    def test_a_refund_stripe_reports_after_refusing_our_request_is_recorded_when_its_event_comes(
        self, localstripe, paid, staff, settings, send
    ):
        invalid = {"error": {"type": "invalid_request_error", "message": "Charge ch_1 has already been refunded."}}
        proxy = LossyProxy(localstripe.url, canned={r"^POST /v1/refunds$": (400, invalid)})
        settings.STRIPE_API_BASE = proxy.url
        try:
            with pytest.raises(RefundRefused, match=f"^{re.escape(STRIPE_REFUSED)}$"):
                refund_issue(payment=paid, amount_cents=6000, minutes=240, reason=REASON, actor=staff)
        finally:
            proxy.close()
        refund = Refund.objects.get()
        assert (refund.status, refund.failure_reason) == ("failed", STRIPE_REFUSED)

        # One answer refused it, yet Stripe reports it made (an earlier request whose answer was
        # lost): Stripe's word on the money outranks our failure.
        made = {**samples.refund(paid, amount_cents=6000), "metadata": {"portal_refund_id": str(refund.pk)}}
        send(samples.event("refund.created", made))

        refund.refresh_from_db()
        assert (refund.status, refund.stripe_refund_id, refund.failure_reason) == ("succeeded", made["id"], "")
        assert (refund.minutes_reversed, lot_minutes(paid)) == (240, 360)
        assert refund.credit_note.number == cn(1)
        assert refund_defaults(payment=paid).refundable_cents == 9000

    def test_a_failure_stripe_reported_stays_final(self, localstripe, paid, staff, send):
        refund = refund_issue(payment=paid, amount_cents=6000, minutes=240, reason=REASON, actor=staff)
        [made] = stripe_refunds(localstripe, paid)
        send(samples.event("refund.updated", {**made, "status": "failed"}))

        send(samples.event("refund.updated", made))

        refund.refresh_from_db()
        assert (refund.status, refund.minutes_reversed, lot_minutes(paid)) == ("failed", 0, 600)


class TestConsoleDefaultsAddUp:
    def test_repeated_small_console_refunds_at_the_default_take_back_the_share_of_their_sum(
        self, localstripe, paid, staff
    ):
        for _ in range(20):
            minutes = refund_defaults(payment=paid, amount_cents=13).default_minutes
            refund_issue(payment=paid, amount_cents=13, minutes=minutes, reason=REASON, actor=staff)

        # 20 x €0.13 is €2.60 of €150.00: 10.4 minutes of 600, so 10; not 20 x round(0.52).
        assert Refund.objects.aggregate(total=Sum("minutes_reversed"))["total"] == 10
        assert lot_minutes(paid) == 590

    def test_the_default_after_a_money_only_refund_is_the_share_of_the_new_amount_alone(self, localstripe, paid, staff):
        refund_issue(payment=paid, amount_cents=7500, minutes=0, reason=REASON, actor=staff)

        defaults = refund_defaults(payment=paid)

        # Staff chose to take nothing back for the first half; the default does not take it now.
        assert (defaults.refundable_cents, defaults.default_minutes) == (7500, 300)


class TestTheConsolesSendAgainSaysWhatHappened:
    def send_again(self, finance_client, refund):
        response = finance_client.post(reverse("console:refund_send", args=[refund.pk]), follow=True)
        return html.unescape(response.content.decode())

    def test_a_refund_stripe_never_received_is_sent(
        self, localstripe, paid, staff, settings, unreachable, finance_client
    ):
        refund = stuck_refund(paid, staff, amount_cents=3000, minutes=60)
        settings.STRIPE_API_BASE = localstripe.url

        text = self.send_again(finance_client, refund)

        assert "The refund of €30.00 was sent to Stripe, which answered: succeeded." in text
        assert len(every_stripe_refund(localstripe, paid)) == 1

    def test_a_refund_stripe_had_made_is_recorded_and_not_sent(
        self, localstripe, paid, staff, settings, finance_client
    ):
        proxy = LossyProxy(localstripe.url, drop_response=r"^POST /v1/refunds$")
        settings.STRIPE_API_BASE = proxy.url
        refund = stuck_refund(paid, staff, amount_cents=6000, minutes=240)
        proxy.close()
        settings.STRIPE_API_BASE = localstripe.url

        text = self.send_again(finance_client, refund)

        assert "Stripe had already made the refund of €60.00" in text
        assert "Nothing was sent again." in text and "was sent to Stripe" not in text
        assert len(every_stripe_refund(localstripe, paid)) == 1

    def test_a_refund_already_answered_is_left_as_it_is(self, localstripe, paid, staff, finance_client):
        refund = refund_issue(payment=paid, amount_cents=3000, minutes=60, reason=REASON, actor=staff)

        text = self.send_again(finance_client, refund)  # from a page opened before Stripe answered

        assert "The refund of €30.00 already had its answer from Stripe (succeeded); nothing was sent." in text
        assert "was sent to Stripe" not in text
        assert len(every_stripe_refund(localstripe, paid)) == 1
