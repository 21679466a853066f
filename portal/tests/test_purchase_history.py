"""The dashboard's purchase history tells the whole truth: what each payment became (refunded, on
hold for a dispute, released, declined and why), and the hours a school gave (granted, restored)."""

import re
from datetime import timedelta
from itertools import count

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import ledger, samples
from billing.disputes.holds import dispute_record
from billing.models import Lot, Payment
from billing.refunds import refund_record
from billing.tests.builders import credit, make_paid_payment, make_plan, make_staff, make_student, use

URL = reverse("student:dashboard")
_numbers = count(1)


def paid(account, *, name="Standard", minutes=600, price_cents=15000, days_ago=0):
    """A settled payment and its lot, the way a pay click leaves them (without a Stripe charge)."""
    plan = make_plan(name=f"{name} {next(_numbers)}", minutes=minutes, price_cents=price_cents)
    lot = credit(account, minutes, name=name, price_cents=price_cents, plan=plan, bought_days_ago=days_ago)
    return _payment(account, plan, lot=lot, status=Payment.Status.SUCCEEDED, days_ago=days_ago)


def declined(account, *, name="Intensive", message="Your card was declined by your bank.", code="card_declined"):
    plan = make_plan(name=f"{name} {next(_numbers)}", minutes=1200, price_cents=27000)
    return _payment(account, plan, status=Payment.Status.FAILED, failure_code=code, failure_message=message)


def _payment(account, plan, *, lot=None, days_ago=0, **fields):
    number = next(_numbers)
    payment = Payment.objects.create(
        account=account,
        plan=plan,
        kind=Payment.Kind.PURCHASE,
        amount_cents=plan.price_cents,
        currency=plan.currency,
        minutes=plan.minutes,
        validity_days=plan.validity_days,
        idempotency_key=f"test-{number}",
        stripe_payment_intent_id=f"pi_test_{number}",
        lot=lot,
        **fields,
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return payment


def refund(payment, amount_cents, *, status="succeeded"):
    return refund_record(
        payment=payment,
        stripe_refund_id=f"re_{next(_numbers)}",
        amount_cents=amount_cents,
        currency=payment.currency,
        status=status,
    )


def dispute(payment, **shape):
    event_type = shape.pop("event_type", "charge.dispute.funds_withdrawn")
    return dispute_record(payment=payment, dispute_object=samples.dispute(payment, **shape), event_type=event_type)


def history(client, **query):
    text = client.get(URL, query).content.decode()
    table = text[text.index('<div id="purchase-table"') :]
    return table[: table.index("</section>")]


def rows(table_html):
    return re.findall(r"<tr[^>]*>\s*<td.*?</tr>", table_html, flags=re.S)


def test_a_paid_purchase_shows_its_price_and_receipt(student_client, student, localstripe):
    payment = make_paid_payment(localstripe, account=student)

    table = history(student_client)

    [row] = rows(table)
    assert "Standard" in row and "Purchase" in row and "10 h" in row and "€150.00" in row
    assert '<span class="badge badge-ok">Paid</span>' in row
    assert f"Receipt {payment.receipt.number}" in row


def test_a_refunded_purchase_says_how_much_money_and_how_many_hours_came_back(student_client, student):
    refund(paid(student), 15000)

    [row] = rows(history(student_client))

    assert ">Refunded</span>" in row
    assert "€150.00 refunded, 10 h taken back." in row


def test_a_partly_refunded_purchase_says_so_with_the_amount_and_the_hours(student_client, student):
    refund(paid(student), 5000)

    [row] = rows(history(student_client))

    assert ">Partly refunded</span>" in row
    assert "€50.00 refunded, 3.33 h taken back." in row
    assert "€150.00" in row  # what was paid stays what was paid


def test_a_refund_of_money_only_says_no_hours_were_taken(student_client, student):
    payment = paid(student)
    ledger.usage_record(
        account=student, minutes=600, occurred_at=timezone.now(), tutor="Dr. Maria Keller", subject="Mathematics"
    )
    refund(payment, 15000)  # every hour was used: nothing left to take back

    [row] = rows(history(student_client))

    assert "€150.00 refunded; no hours taken back." in row


def test_a_refund_that_failed_in_the_end_is_not_shown_as_refunded(student_client, student):
    payment = paid(student)
    failed = refund(payment, 15000, status="pending")
    refund_record(
        payment=payment, stripe_refund_id=failed.stripe_refund_id, amount_cents=15000, currency="EUR", status="failed"
    )

    [row] = rows(history(student_client))

    assert '<span class="badge badge-ok">Paid</span>' in row and "refunded" not in row


def test_a_disputed_purchase_says_its_hours_are_on_hold(student_client, student):
    dispute(paid(student), withdrawn=True)

    [row] = rows(history(student_client))

    assert ">Hours on hold</span>" in row
    assert "Disputed with your bank: 10 h on hold until the dispute is settled." in row


def test_a_dispute_before_the_funds_leave_holds_nothing_yet_and_says_so(student_client, student):
    dispute(paid(student), event_type="charge.dispute.created")

    [row] = rows(history(student_client))

    assert ">Disputed</span>" in row and "no hours are on hold" in row


def test_a_won_dispute_says_the_hours_were_released(student_client, student):
    payment = paid(student)
    opened = dispute(payment, withdrawn=True)
    dispute(payment, dispute_id=opened.stripe_dispute_id, status="won", event_type="charge.dispute.closed")

    [row] = rows(history(student_client))

    assert ">Hours released</span>" in row
    assert "The dispute is settled: 10 h released." in row and "on hold" not in row


def test_a_lost_dispute_says_the_hours_are_gone(student_client, student):
    payment = paid(student)
    opened = dispute(payment, withdrawn=True)
    dispute(payment, dispute_id=opened.stripe_dispute_id, status="lost", event_type="charge.dispute.closed")

    [row] = rows(history(student_client))

    assert ">Dispute lost</span>" in row and "10 h removed" in row


def test_a_declined_attempt_is_listed_with_its_reason_and_nothing_charged(student_client, student):
    declined(student, message="Your card has insufficient funds.")

    [row] = rows(history(student_client))

    assert "Intensive" in row and ">Failed</span>" in row
    assert "Your card has insufficient funds." in row
    assert "Not charged" in row and "€270.00" not in row


def test_an_attempt_cancelled_before_the_bank_answered_is_not_history(student_client, student):
    declined(student, code=Payment.Failure.CANCELED, message="Cancelled: you started another payment.")

    assert "No purchases yet." in history(student_client)


def test_the_filter_hides_declined_attempts(student_client, student):
    paid(student, name="Standard")
    declined(student, name="Intensive")

    shown = history(student_client)
    hidden = history(student_client, **{"purchases-declined": ["hide", "show"]})  # ticked: the last value counts
    unticked = history(student_client, **{"purchases-declined": "hide"})

    assert "Intensive" in shown and "Intensive" in hidden
    assert "Intensive" not in unticked and "Standard" in unticked
    assert re.search(r'<input type="checkbox" name="purchases-declined" value="show"\s*>', unticked)
    assert re.search(r'<input type="checkbox" name="purchases-declined" value="show" checked>', shown)


def test_the_filter_keeps_the_other_tables_sort_and_starts_at_the_first_page(student_client, student):
    declined(student)

    table = history(student_client, **{"usage-sort": "minutes", "purchases-page": "2"})

    form = table[table.index("<form") : table.index("</form>")]
    assert '<input type="hidden" name="usage-sort" value="minutes">' in form
    assert "purchases-page" not in form


def test_the_filter_swaps_only_the_tables_under_htmx(student_client, student, django_assert_max_num_queries):
    declined(student, name="Intensive")
    student_client.get(URL)

    with django_assert_max_num_queries(8):  # session, user, account, purchases (2), sessions (2), + 1 spare
        response = student_client.get(
            URL, {"purchases-declined": "hide"}, headers={"HX-Request": "true", "HX-Target": "purchase-table"}
        )

    text = response.content.decode()
    assert text.lstrip().startswith('<div id="purchase-table"') and "<html" not in text
    assert "Intensive" not in text and "No purchases yet." in text
    assert 'id="usage-table"' in text  # out-of-band, its links carrying the filter
    assert "purchases-declined=hide" in text[text.index('id="usage-table"') :]


@pytest.mark.parametrize("value", ["", "nonsense", "1", ["hide", "nonsense"], "x" * 5000])
def test_a_bad_filter_value_shows_everything(student_client, student, value):
    declined(student, name="Intensive")

    response = student_client.get(URL, {"purchases-declined": value})

    assert response.status_code == 200
    assert "Intensive" in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        {"purchases-sort": "nonsense"},
        {"purchases-sort": "-amount_cents"},
        {"purchases-page": "-3"},
        {"purchases-page": "x"},
    ],
)
def test_bad_sort_or_page_parameters_still_show_the_history(student_client, student, query):
    paid(student)
    declined(student)

    response = student_client.get(URL, query)

    assert response.status_code == 200
    assert "Your card was declined by your bank." in response.content.decode()


def test_the_history_sorts_by_price_and_pages_without_javascript(student_client, student):
    for n in range(12):
        paid(student, name=f"Package {n:02d}", price_cents=1000 + n * 100, days_ago=n)

    newest = history(student_client)
    cheapest = history(student_client, **{"purchases-sort": "amount_cents"})
    page_two = history(student_client, **{"purchases-page": "2"})

    assert newest.index("Package 00") < newest.index("Package 09") and "Package 10" not in newest
    assert "Package 10" in page_two and "Page 2 of 2" in page_two
    assert cheapest.index("Package 00") < cheapest.index("Package 01")


def test_a_granted_lot_is_free_and_has_no_receipt(student_client, student):
    granted(student)

    [row] = rows(history(student_client))

    assert "Welcome hours" in row and ">Granted by your school</span>" in row
    assert '<td data-label="Paid" class="num">Free</td>' in row and "EUR" not in row
    assert '<td data-label="Receipt" >—</td>' in row


def test_a_restored_lot_says_where_its_hours_came_from(student_client, student):
    lot = restored(student)

    [row] = [row for row in rows(history(student_client)) if lot.name in row]

    assert ">Restored</span>" in row and "Hours of a voided session" in row and "Free" in row
    assert "Restored from a voided session" in row  # how it came, under its name


def test_the_lot_card_and_the_lot_page_say_a_lot_was_granted(student_client, student):
    lot = granted(student)

    card = student_client.get(URL).content.decode()
    page = student_client.get(reverse("student:lot_detail", args=[lot.pk])).content.decode()

    assert '<span class="badge badge-accent">Granted by your school</span>' in card
    assert "<dt>From</dt><dd>Granted by your school</dd>" in page
    assert "<dt>Paid</dt><dd>Free</dd>" in page and "Included" not in page


def test_a_bought_lot_carries_no_source_badge(student_client, student):
    paid(student)

    assert "Granted by your school" not in student_client.get(URL).content.decode()


@pytest.mark.django_db
def test_the_history_costs_the_same_queries_however_long_it_is(client, django_assert_max_num_queries):
    def dashboard_queries(account, purchases):
        for n in range(purchases):
            payment = paid(account, days_ago=n)
            if n % 3 == 1:
                refund(payment, 5000)
            if n % 3 == 2:
                dispute(payment, withdrawn=True)
            declined(account)
        granted(account)
        client.force_login(account.user)
        client.get(URL)  # warm the session
        with django_assert_max_num_queries(12) as captured:
            response = client.get(URL, {"purchases-page": 2})
        assert response.status_code == 200
        return len(captured)

    assert dashboard_queries(make_student(), purchases=6) == dashboard_queries(make_student(), purchases=60)


def granted(account, *, name="Welcome hours", minutes=300):
    return ledger.lot_grant(
        account=account,
        name=name,
        minutes=minutes,
        expires_at=timezone.now() + timedelta(days=60),
        reason="Welcome to the school",
        actor=make_staff(f"staff{next(_numbers)}@example.com"),
    )


def restored(account):
    """A session voided after the lot it drew on expired: its minutes come back in a lot of their own."""
    credit(account, 600, name="Starter", days_valid=30, bought_days_ago=31)  # expired yesterday
    session = use(account, 90, days_ago=2)
    ledger.usage_reverse(usage=session, reason="Recorded twice", actor=make_staff(f"staff{next(_numbers)}@x.com"))
    return Lot.objects.get(account=account, source=Lot.Source.RESTORED)


def test_the_lot_page_names_a_voided_session_and_its_reason(student_client, student):
    lot = credit(student, 600)
    session = use(student, 90, subject="Chemistry")
    ledger.usage_reverse(usage=session, reason="Recorded twice", actor=make_staff())

    page = student_client.get(reverse("student:lot_detail", args=[lot.pk])).content.decode()

    assert "Session voided (Recorded twice)" in page
    assert "+1.5 h" in page and "−1.5 h" in page  # the session and its void both stay in the history


def test_a_granted_lots_history_says_it_was_granted(student_client, student):
    lot = granted(student)

    page = student_client.get(reverse("student:lot_detail", args=[lot.pk])).content.decode()

    assert '<td data-label="What" >Granted by your school</td>' in page
    assert "+5 h" in page


def test_a_voided_session_stays_in_the_sessions_table_marked_and_not_counted(student_client, student):
    credit(student, 600)
    use(student, 60, subject="Physics")
    session = use(student, 90, subject="Chemistry")
    ledger.usage_reverse(usage=session, reason="Recorded twice", actor=make_staff())

    text = student_client.get(URL).content.decode()
    sessions = text[text.index('<div id="usage-table"') : text.index('<div id="purchase-table"')]

    voided = re.search(r'<tr class="is-voided[^"]*">.*?</tr>', sessions, flags=re.S).group()
    assert "Chemistry" in voided and '<span class="badge badge-muted">Voided</span>' in voided
    assert "Recorded twice" in voided and "<s>1 h 30 min</s>" in voided and "not counted" in voided
    assert sessions.count("is-voided") == 1  # Physics counts as it did
    assert 'data-testid="balance">9 h<' in text
