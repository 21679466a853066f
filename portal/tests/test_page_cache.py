"""The student's dashboard comes from the cache while nothing it shows has changed, and every change
to what it shows, whichever way it is made, moves the account's version in the same transaction: the
page served after the change is exactly the page rendered afresh."""

import re
import secrets
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import cards, ledger, profiles, refunds, samples, subscriptions
from billing.disputes.holds import dispute_record
from billing.fraud.blocks import account_block, account_unblock
from billing.hours_actions import hours_grant, lot_extend, usage_void
from billing.models import Account, Plan
from billing.tests.builders import (
    add_card,
    credit,
    make_paid_payment,
    make_plan,
    make_staff,
    make_student,
    make_subscription_plan,
    subscribe,
    use,
)

URL = "/"
# What differs between two renders of the same data: the masked CSRF token and the pay buttons'
# signed tokens, each minted anew, and the live poller's ETag, which names the plans' version (made
# up anew when the cache is emptied).
_MINTED = re.compile(
    r'(name="csrfmiddlewaretoken" value="|name="token" value="|"X-CSRFToken": "'
    r'|If-None-Match&quot;: &quot;\\&quot;)[^"&\\]+'
)


def page(client):
    response = client.get(URL)
    assert response.status_code == 200
    return _MINTED.sub(r"\1…", response.content.decode())


def version(account):
    return Account.objects.values_list("version", flat=True).get(pk=account.pk)


def assert_served_page_is_fresh(client):
    served = page(client)
    cache.clear()
    assert served == page(client)


def key():
    return secrets.token_urlsafe(18)


# Every way what the dashboard shows can change, each through the service the product uses.
# (name, needs localstripe, change(account, staff))


def _session_recorded(account, staff):
    use(account, 45, subject="Physics")


def _session_voided(account, staff):
    usage = use(account, 30)
    usage_void(usage=usage, reason="Recorded twice", actor=staff, key=key(), late_allowed=True)


def _hours_granted(account, staff):
    hours_grant(
        account=account, name="Goodwill", minutes=90, expires_at=timezone.now() + timedelta(days=30),
        reason="Cancelled session", actor=staff, key=key(),
    )  # fmt: skip


def _lot_extended(account, staff):
    lot = account.lots.first()
    lot_extend(lot=lot, expires_at=lot.expires_at + timedelta(days=20), reason="Holiday", actor=staff, key=key())


def _lot_adjusted(account, staff):
    ledger.lot_adjust_by_staff(lot=account.lots.first(), minutes=-15, reason="Late start", actor=staff)


def _lots_expired(account, staff):
    credit(account, 120, days_valid=1, bought_days_ago=0, name="Short")
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        ledger.lots_expire_due()


def _blocked(account, staff):
    account_block(account=account, actor=staff, reason="Card testing")


def _billing_details(account, staff):
    profiles.billing_details_save(
        account=account, first_name="Ana", last_name="Sousa", billing_address="Rua A", tax_id="123456789"
    )


_billing_details.shown = False  # on receipts issued from then on, not on the dashboard


def _reminder_level(account, staff):
    profiles.low_balance_level_set(account=account, minutes=10 * 60)


def _card_added(account, staff, localstripe):
    add_card(account, localstripe)


def _card_made_default(account, staff, localstripe):
    add_card(account, localstripe)
    cards.card_make_default(card=add_card(account, localstripe, number="5555555555554444"))


def _card_removed(account, staff, localstripe):
    add_card(account, localstripe)
    cards.card_remove(card=add_card(account, localstripe, number="5555555555554444"))


def _package_bought(account, staff, localstripe):
    make_paid_payment(localstripe, account=account)


def _refunded(account, staff, localstripe):
    payment = make_paid_payment(localstripe, account=account)
    refunds.refund_issue(payment=payment, amount_cents=5000, minutes=200, reason="Unused hours", actor=staff)


def _disputed(account, staff, localstripe):
    payment = make_paid_payment(localstripe, account=account)
    dispute_record(
        payment=payment,
        dispute_object=samples.dispute(payment, withdrawn=True),
        event_type="charge.dispute.funds_withdrawn",
    )


def _subscribed(account, staff, localstripe):
    subscribe(account, make_subscription_plan(), localstripe)


def _subscription_cancelled(account, staff, localstripe):
    subscription = subscribe(account, make_subscription_plan(), localstripe)
    subscriptions.subscription_cancel_at_period_end(subscription=subscription)


WRITE_PATHS = [
    _session_recorded,
    _session_voided,
    _hours_granted,
    _lot_extended,
    _lot_adjusted,
    _lots_expired,
    _blocked,
    _billing_details,
    _reminder_level,
    _card_added,
    _card_made_default,
    _card_removed,
    _package_bought,
    _refunded,
    _disputed,
    _subscribed,
    _subscription_cancelled,
]


@pytest.fixture
def dashboard_student(client):
    account = make_student()
    make_plan()
    credit(account, 600)
    use(account, 60)
    client.force_login(account.user)
    return account


@pytest.mark.django_db
@pytest.mark.parametrize("change", WRITE_PATHS, ids=lambda change: change.__name__.strip("_"))
def test_every_change_moves_the_version_and_the_served_page_follows(request, client, dashboard_student, change):
    staff = make_staff()
    needs_stripe = "localstripe" in change.__code__.co_varnames
    extra = [request.getfixturevalue("localstripe")] if needs_stripe else []
    before_page, before = page(client), version(dashboard_student)

    change(dashboard_student, staff, *extra)

    assert version(dashboard_student) > before
    assert_served_page_is_fresh(client)
    assert (page(client) != before_page) is getattr(change, "shown", True)


@pytest.mark.django_db
def test_a_blocked_account_unblocked_shows_its_buttons_again(client, dashboard_student):
    staff = make_staff()
    account_block(account=dashboard_student, actor=staff, reason="Card testing")
    blocked = page(client)

    account_unblock(account=dashboard_student, actor=staff, reason="Cleared")

    assert page(client) != blocked
    assert_served_page_is_fresh(client)


@pytest.mark.django_db
def test_a_plan_changed_in_the_admin_shows_on_every_dashboard(
    client, dashboard_student, django_capture_on_commit_callbacks
):
    before = page(client)
    with django_capture_on_commit_callbacks(execute=True):
        plan = Plan.objects.get(name="Standard")
        plan.price_cents = 16000
        plan.save()

    after = page(client)
    assert after != before and "€160.00" in after
    assert_served_page_is_fresh(client)


@pytest.mark.django_db
def test_another_students_change_leaves_the_page_in_the_cache(client, dashboard_student):
    before = page(client)
    other = make_student()
    credit(other, 300)
    use(other, 60)

    with CaptureQueriesContext(connection) as queries:
        again = page(client)

    assert again == before
    assert len(queries) <= 2, [query["sql"] for query in queries]  # the session, the user with the account


@pytest.mark.django_db
def test_the_page_changes_by_time_alone_when_a_lot_expires(client):
    account = make_student()
    make_plan()
    soon = timezone.now() + timedelta(minutes=2)  # sooner than any entry is kept anyway
    lot = ledger.lot_credit(account=account, name="Short", minutes=300, purchased_at=timezone.now(), expires_at=soon)
    client.force_login(account.user)
    before = page(client)

    with time_machine.travel(lot.expires_at + timedelta(seconds=1)):
        after = page(client)
        assert_served_page_is_fresh(client)

    assert after != before


@pytest.mark.django_db
def test_tomorrow_reads_today_after_midnight(client):
    account = make_student()
    # Bought at noon, so that an hour before the expiry is on its day, whenever the suite runs.
    with time_machine.travel(timezone.localtime().replace(hour=12), tick=False):
        lot = credit(account, 300, days_valid=2)
    client.force_login(account.user)
    with time_machine.travel(timezone.localtime(lot.expires_at) - timedelta(days=1, hours=1), tick=False):
        assert "tomorrow" in page(client)
    with time_machine.travel(timezone.localtime(lot.expires_at) - timedelta(hours=1), tick=False):
        assert "today" in page(client)


@pytest.mark.django_db
def test_each_language_and_time_zone_has_its_own_page(client, dashboard_student):
    english = page(client)
    user = dashboard_student.user
    user.language, user.time_zone = "pt-pt", "Europe/Lisbon"
    user.save()

    portuguese = page(client)

    assert 'lang="pt-pt"' in portuguese and 'lang="en"' in english
    assert_served_page_is_fresh(client)


@pytest.mark.django_db
def test_a_page_with_a_message_waiting_is_never_kept(client, dashboard_student):
    page(client)
    response = client.post("/account/reminder/", {"hours": "2", "minutes": "0"})  # saved, with a message
    assert response.status_code == 302

    assert "message-success" in page(client)
    assert "message-success" not in page(client)
    assert_served_page_is_fresh(client)


@pytest.mark.django_db
def test_a_cache_that_is_down_costs_a_render_not_an_error(client, dashboard_student, settings):
    unreachable = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    settings.CACHES = {"default": unreachable}
    response = client.get(URL)
    assert response.status_code == 200 and 'id="usage-table"' in response.content.decode()


def test_templates_are_compiled_once_in_every_configuration():
    from django.template import engines
    from django.template.loaders.cached import Loader

    def chain(loaders):
        for loader in loaders:
            yield loader
            yield from chain(getattr(loader, "loaders", []))

    assert any(isinstance(loader, Loader) for loader in chain(engines["django"].engine.template_loaders))
