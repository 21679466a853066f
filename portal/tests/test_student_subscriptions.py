"""The student's subscription pages: subscribe in one click from the dashboard, and the subscription
page's self-service (cancel at period end, resume, change plan, change card, pay now). Each answer
is an HTMX fragment in place, or a redirect with a message without JavaScript; against a real
localstripe, with what it lacks (price changes, renewals) answered at the HTTP boundary."""

import html
import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from billing import formatting, samples, stripe_gateway, subscriptions
from billing.errors import AccountBlocked
from billing.fraud.blocks import account_block
from billing.models import Lot, Payment, Subscription
from billing.subscriptions import NOT_FOR_SALE, SUBSCRIPTION_ALREADY, subscribe_token_issue
from billing.tests.builders import add_card, make_plan, make_student, make_subscription_plan, subscribe
from portal.student import views
from portal.tests.htmx import client_events
from portal.tests.subscription_stubs import plan_change_proxy, renewal_paid_proxy

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("student:dashboard")
PAGE = reverse("student:subscription")
SUBSCRIBE = reverse("student:subscribe")
HTMX = {"HX-Request": "true", "HX-Target": "payment-result"}
IN_PLACE = {"HX-Request": "true", "HX-Target": "subscription"}


@pytest.fixture
def plan(db):
    return make_subscription_plan("Monthly 8 h", minutes=480, price_cents=9900)


@pytest.fixture
def bigger_plan(db):
    return make_subscription_plan("Monthly 12 h", minutes=720, price_cents=13900)


def stripe_subscriptions(localstripe):
    return localstripe.get("/v1/subscriptions", status="all")["data"]


def text_of(response):
    return response.content.decode()


def words_of(response):
    """What a person reads: the answer without its tags, each run of white space one space."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", text_of(response)))
    return " ".join(text.split()).replace(" .", ".").replace(" :", ":")


def messages_of(response):
    return [str(message) for message in response.wsgi_request._messages]


def post_subscribe(client, token, card=None, htmx=True):
    data = {"token": token}
    if card is not None:
        data["payment_method"] = card.pk
    return client.post(SUBSCRIBE, data, headers=HTMX if htmx else {})


@pytest.fixture
def subscribed(localstripe, student, plan):
    subscription = subscribe(student, plan, localstripe)
    assert subscription.status == "active"
    return subscription


class TestTheDashboard:
    def test_it_offers_each_plan_with_a_button_that_says_what_happens(self, localstripe, student_client, student, plan):
        add_card(student, localstripe)

        text = text_of(student_client.get(DASHBOARD))

        assert "Monthly plans" in text
        assert "Subscribe: 8 h for €99.00 a month with Visa 4242" in text
        assert len(re.findall(r'name="token" value="[^"]+"', text)) == 1  # no package on sale here

    def test_without_a_card_it_invites_adding_one(self, student_client, student, plan):
        text = text_of(student_client.get(DASHBOARD))

        assert "Add a card to subscribe" in text
        assert "Subscribe: 8 h" not in text

    def test_a_blocked_account_sees_buying_paused(self, localstripe, student_client, student, plan, staff_user):
        add_card(student, localstripe)
        account_block(account=student, actor=staff_user, reason="Confirmed fraud")

        text = text_of(student_client.get(DASHBOARD))

        assert "Subscribe: 8 h" not in text
        assert "Buying is paused on your account." in text

    def test_with_a_subscription_it_shows_a_compact_card_instead(self, subscribed, student_client):
        text = text_of(student_client.get(DASHBOARD))

        assert "Your subscription" in text
        assert "Subscribe: 8 h" not in text
        renews = formatting.date_text(subscribed.current_period_end)  # in the school's zone, as shown
        assert f"Renews on <strong>{renews}</strong>" in text
        assert "€99.00" in text
        assert 'data-testid="subscription-status">Active<' in text
        assert f'href="{PAGE}">Manage your subscription' in text

    def test_a_subscription_period_is_not_offered_for_renewal_as_a_package(self, subscribed, student_client):
        text = text_of(student_client.get(DASHBOARD))

        assert "Renew 8 h" not in text  # payment_start refuses a subscription plan: no such button
        assert "From your subscription." in text

    def test_a_past_due_subscription_leads_to_pay_now(self, subscribed, student_client):
        past_due(subscribed)

        text = text_of(student_client.get(DASHBOARD))

        assert 'data-testid="subscription-status">Past due<' in text
        assert f'href="{PAGE}">Pay now on your subscription page' in text

    def test_its_plans_fragment_refreshes_alone(self, localstripe, student_client, student, plan):
        add_card(student, localstripe)

        response = student_client.get(DASHBOARD, headers={"HX-Request": "true", "HX-Target": "subscription-plans"})

        assert text_of(response).lstrip().startswith('<section id="subscription-plans"')


class TestSubscribing:
    def test_a_click_subscribes_credits_the_period_and_refreshes_the_page(
        self, localstripe, student_client, student, plan
    ):
        card = add_card(student, localstripe)
        token = subscribe_token_issue(account=student, plan=plan)

        response = post_subscribe(student_client, token, card)

        text = words_of(response)
        assert response.status_code == 200
        assert client_events(response) == {"balanceChanged"}
        assert "Payment received. 8 h added (Monthly 8 h, €99.00). Your balance is now 8 h." in text
        assert "Your Monthly 8 h subscription is active: it renews on" in text
        subscription = Subscription.objects.get()
        assert subscription.status == "active" and subscription.account == student
        assert Lot.objects.get().minutes_purchased == 480
        assert [remote["status"] for remote in stripe_subscriptions(localstripe)] == ["active"]

    def test_the_same_click_posted_twice_makes_one_subscription(self, localstripe, student_client, student, plan):
        card = add_card(student, localstripe)
        token = subscribe_token_issue(account=student, plan=plan)

        first = post_subscribe(student_client, token, card)
        second = post_subscribe(student_client, token, card)

        assert "Payment received." in words_of(first)
        assert "You already used this button; nothing new was charged." in text_of(second)
        assert Subscription.objects.count() == Lot.objects.count() == 1
        assert len(stripe_subscriptions(localstripe)) == 1

    def test_a_second_subscription_is_refused_and_nothing_is_made_at_stripe(
        self, subscribed, localstripe, student_client, student, bigger_plan
    ):
        token = subscribe_token_issue(account=student, plan=bigger_plan)  # a page opened before the first

        response = post_subscribe(student_client, token)

        assert SUBSCRIPTION_ALREADY in text_of(response)
        assert Subscription.objects.count() == 1
        assert len(stripe_subscriptions(localstripe)) == 1

    def test_a_plan_no_longer_on_sale_is_refused(self, localstripe, student_client, student, plan):
        add_card(student, localstripe)
        token = subscribe_token_issue(account=student, plan=plan)
        plan.is_active = False
        plan.save()

        response = post_subscribe(student_client, token)

        assert NOT_FOR_SALE in text_of(response)
        assert not Subscription.objects.exists()
        assert stripe_subscriptions(localstripe) == []

    def test_a_package_plan_is_not_a_subscription(self, localstripe, student_client, student):
        add_card(student, localstripe)
        package = make_plan("Standard")
        token = subscribe_token_issue(account=student, plan=package)

        assert NOT_FOR_SALE in text_of(post_subscribe(student_client, token))
        assert not Subscription.objects.exists()

    def test_a_blocked_account_is_refused(self, localstripe, student_client, student, plan, staff_user):
        add_card(student, localstripe)
        token = subscribe_token_issue(account=student, plan=plan)
        account_block(account=student, actor=staff_user, reason="Confirmed fraud")

        response = post_subscribe(student_client, token)

        assert AccountBlocked.MESSAGE in text_of(response)
        assert not Subscription.objects.exists()
        assert stripe_subscriptions(localstripe) == []

    def test_another_students_card_is_refused(self, localstripe, student_client, student, plan):
        add_card(student, localstripe)
        foreign = add_card(make_student("other@example.com"), localstripe)
        token = subscribe_token_issue(account=student, plan=plan)

        response = post_subscribe(student_client, token, foreign)

        assert views.NOT_YOUR_CARD in text_of(response)
        assert not Subscription.objects.exists()
        assert foreign.account.payment_methods.get().is_default  # not touched

    @pytest.mark.parametrize("data", [{}, {"token": "made-up"}, {"token": "x", "payment_method": "abc"}])
    def test_bad_input_is_a_message_not_an_error(self, localstripe, student_client, student, data):
        response = student_client.post(SUBSCRIBE, data, headers=HTMX)

        assert response.status_code == 200
        assert "This subscribe button is not valid" in text_of(response)
        assert not Subscription.objects.exists()

    def test_a_declined_first_payment_says_why_and_leaves_no_subscription(
        self, localstripe, student_client, student, plan
    ):
        declining = add_card(student, localstripe, "4000000000000341")  # the first card: the default
        add_card(student, localstripe, "4242424242424242")
        token = subscribe_token_issue(account=student, plan=plan)

        text = words_of(post_subscribe(student_client, token, declining))

        assert "Payment failed. Your card was declined by your bank. No hours were added." in text
        assert "No subscription was started." in text
        offers = text.split("Try again with:")[1]
        assert offers.index("Subscribe: 8 h for €99.00 a month with Visa 4242") < offers.index("with Visa 0341")
        assert "Visa 4242 becomes your default card." in offers
        subscription = Subscription.objects.get()
        assert subscription.status == "incomplete_expired"
        assert subscription.failure_message == "Your card was declined by your bank."
        assert [remote["status"] for remote in stripe_subscriptions(localstripe)] == ["canceled"]
        assert not Lot.objects.exists()

    def test_another_card_after_a_decline_subscribes_and_becomes_the_default(
        self, localstripe, student_client, student, plan
    ):
        declining = add_card(student, localstripe, "4000000000000341")
        good = add_card(student, localstripe, "4242424242424242")
        post_subscribe(student_client, subscribe_token_issue(account=student, plan=plan), declining)

        response = post_subscribe(student_client, subscribe_token_issue(account=student, plan=plan), good)

        assert "Payment received. 8 h added" in words_of(response)
        good.refresh_from_db()
        assert good.is_default
        assert subscriptions.live_subscription(account=student).status == "active"

    def test_a_3d_secure_first_payment_is_handed_to_stripe_js_and_completing_it_activates(
        self, localstripe, student_client, student, plan
    ):
        card = add_card(student, localstripe, "4000002500003155")

        text = text_of(post_subscribe(student_client, subscribe_token_issue(account=student, plan=plan), card))

        payment = Payment.objects.get()
        assert payment.for_subscription and payment.status == "requires_action"
        secret = re.search(r'data-client-secret="([^"]+)"', text).group(1)
        assert secret.startswith(f"{payment.stripe_payment_intent_id}_secret_")
        assert reverse("student:payment_refresh", args=[payment.pk]) in text
        assert Subscription.objects.get().status == "incomplete"

        localstripe.browser_authenticate(secret, success=True)
        response = student_client.post(reverse("student:payment_refresh", args=[payment.pk]), headers=HTMX)

        assert "Payment received. 8 h added (Monthly 8 h, €99.00)." in words_of(response)
        assert Subscription.objects.get().status == "active"
        assert Lot.objects.get().minutes_purchased == 480

    def test_without_htmx_it_redirects_to_the_subscription_page_with_a_message(
        self, localstripe, student_client, student, plan
    ):
        card = add_card(student, localstripe)

        response = post_subscribe(student_client, subscribe_token_issue(account=student, plan=plan), card, htmx=False)

        assert response.status_code == 302 and response["Location"] == PAGE
        [message] = messages_of(response)
        assert message.startswith("You are subscribed to Monthly 8 h: 8 h added to your hours. It renews on ")

    def test_without_htmx_a_refusal_is_a_message(self, subscribed, student_client, student, bigger_plan):
        token = subscribe_token_issue(account=student, plan=bigger_plan)

        response = post_subscribe(student_client, token, htmx=False)

        assert response["Location"] == PAGE
        assert messages_of(response) == [SUBSCRIPTION_ALREADY]

    def test_it_is_refused_for_get(self, student_client):
        assert student_client.get(SUBSCRIBE).status_code == 405


class TestTheSubscriptionPage:
    def test_it_shows_the_plan_status_renewal_card_invoices_and_hours(self, subscribed, student_client):
        text = text_of(student_client.get(PAGE))

        payment = subscribed.payments.get()
        assert '<h1 id="subscription-title">Monthly 8 h</h1>' in text
        assert 'data-testid="subscription-status">Active<' in text
        assert "8 h every month" in text and "€99.00 a month" in text
        assert "Next renewal" in text and "Visa 4242" in text
        assert f'href="{reverse("student:receipt_download", args=[payment.receipt.pk])}"' in text
        assert f"Receipt {payment.receipt.number}" in text
        assert payment.lot.name in text and "Paid" in text
        assert reverse("student:lot_detail", args=[payment.lot.pk]) in text
        assert "Cancel at period end…" in text

    def test_without_a_subscription_it_offers_the_plans(self, localstripe, student_client, student, plan):
        add_card(student, localstripe)

        text = text_of(student_client.get(PAGE))

        assert "You have no subscription." in text
        assert "Subscribe: 8 h for €99.00 a month with Visa 4242" in text

    def test_without_a_card_it_shows_the_card_form(self, student_client, student, plan):
        text = text_of(student_client.get(PAGE))

        assert "Add a card to subscribe" in text and "data-card-form" in text

    def test_its_fragment_refreshes_alone(self, subscribed, student_client):
        response = student_client.get(PAGE, headers=IN_PLACE)

        assert text_of(response).lstrip().startswith('<div id="subscription"')
        assert "<html" not in text_of(response)

    def test_a_confirm_your_payment_alert_reopens_the_check_here(self, localstripe, student_client, student, plan):
        subscribe(student, plan, localstripe, number="4000002500003155")
        payment = Payment.objects.get(status="requires_action")

        text = text_of(student_client.get(PAGE, {"resume": payment.pk}))

        assert f'hx-post="{reverse("student:payment_refresh", args=[payment.pk])}" hx-trigger="load"' in text
        assert "Your first payment waits for your bank's check." in html.unescape(text)

    def test_the_student_nav_links_it(self, student_client):
        assert f'<a href="{PAGE}">Subscription</a>' in text_of(student_client.get(DASHBOARD))


class TestCancelAndResume:
    def test_the_confirmation_says_what_happens_to_the_hours(self, subscribed, student_client):
        url = reverse("student:subscription_cancel", args=[subscribed.pk])

        text = text_of(student_client.get(url, headers=IN_PLACE))

        assert "Cancel at the end of this period?" in text
        assert "The hours you already have stay until they expire." in text
        assert "No more hours are added after" in text
        assert "Yes, cancel at period end" in text
        assert not Subscription.objects.get().cancel_at_period_end  # asking is not doing

    def test_without_htmx_the_confirmation_is_the_whole_page(self, subscribed, student_client):
        text = text_of(student_client.get(reverse("student:subscription_cancel", args=[subscribed.pk])))

        assert "<html" in text and "Yes, cancel at period end" in text

    def test_cancel_at_period_end_then_resume(self, subscribed, localstripe, student_client):
        cancel = student_client.post(reverse("student:subscription_cancel", args=[subscribed.pk]), headers=IN_PLACE)

        text = text_of(cancel)
        assert text.lstrip().startswith('<div id="subscription"')
        assert 'data-testid="subscription-status">Cancels at period end<' in text
        assert "Your subscription ends on" in text and "no more hours are added after" in text
        assert "Resume my subscription" in text
        assert stripe_subscriptions(localstripe)[0]["cancel_at_period_end"] is True

        resume = student_client.post(reverse("student:subscription_resume", args=[subscribed.pk]), headers=IN_PLACE)

        text = text_of(resume)
        assert 'data-testid="subscription-status">Active<' in text
        assert "Your subscription continues: it renews on" in text and "for €99.00." in text
        assert stripe_subscriptions(localstripe)[0]["cancel_at_period_end"] is False
        assert Subscription.objects.get().status == "active"

    def test_without_htmx_cancel_redirects_with_a_message(self, subscribed, localstripe, student_client):
        response = student_client.post(reverse("student:subscription_cancel", args=[subscribed.pk]))

        assert response.status_code == 302 and response["Location"] == PAGE
        [message] = messages_of(response)
        assert message.startswith("Your subscription ends on ")
        assert Subscription.objects.get().cancel_at_period_end

    def test_resuming_a_subscription_that_is_not_cancelled_says_so(self, subscribed, student_client):
        response = student_client.post(reverse("student:subscription_resume", args=[subscribed.pk]), headers=IN_PLACE)

        assert "This subscription is not set to end, so there is nothing to resume." in text_of(response)

    def test_cancelling_twice_says_so(self, subscribed, student_client):
        url = reverse("student:subscription_cancel", args=[subscribed.pk])
        student_client.post(url, headers=IN_PLACE)

        response = student_client.post(url, headers=IN_PLACE)

        assert "This subscription already ends at the end of its period." in text_of(response)


class TestChangeCard:
    def test_another_saved_card_pays_from_now_on_and_becomes_the_default(
        self, subscribed, localstripe, student_client, student
    ):
        other = add_card(student, localstripe, "5555555555554444")

        response = student_client.post(
            reverse("student:subscription_card_change", args=[subscribed.pk]),
            {"payment_method": other.pk},
            headers=IN_PLACE,
        )

        text = text_of(response)
        assert f"{other.label} now pays for your subscription. It is also your default card for packages." in text
        other.refresh_from_db()
        assert other.is_default
        assert Subscription.objects.get().payment_method == other
        customer = localstripe.get(f"/v1/customers/{student.stripe_customer_id}")
        assert customer["invoice_settings"]["default_payment_method"] == other.stripe_payment_method_id

    def test_the_page_offers_the_other_cards_and_says_it_becomes_the_default(
        self, subscribed, localstripe, student_client, student
    ):
        other = add_card(student, localstripe, "5555555555554444")

        text = text_of(student_client.get(PAGE))

        assert f'value="{other.pk}"' in text and other.label in text
        assert "The card you choose also becomes your default card for packages." in text

    def test_another_students_card_is_refused(self, subscribed, localstripe, student_client):
        foreign = add_card(make_student("other@example.com"), localstripe)

        response = student_client.post(
            reverse("student:subscription_card_change", args=[subscribed.pk]), {"payment_method": foreign.pk}
        )

        assert messages_of(response) == [views.NOT_YOUR_CARD]
        assert Subscription.objects.get().payment_method != foreign


class TestChangePlan:
    def test_a_downgrade_applies_from_the_next_period_and_charges_nothing(
        self, localstripe, settings, student_client, student, bigger_plan, plan
    ):
        subscription = subscribe(student, bigger_plan, localstripe)
        proxy = plan_change_proxy(localstripe, subscription, plan)
        settings.STRIPE_API_BASE = proxy.url
        try:
            response = student_client.post(
                reverse("student:subscription_plan_change", args=[subscription.pk]), {"plan": plan.pk}, headers=IN_PLACE
            )
        finally:
            proxy.close()

        text = words_of(response)
        assert "Your plan changes to Monthly 8 h from your next period, on" in text
        assert "Nothing is charged now, and this period's hours stay as they are." in text
        assert Subscription.objects.get().plan == plan
        assert Payment.objects.count() == 1  # only the first period's

    def test_an_upgrade_charges_the_difference_now_and_credits_the_extra_hours(
        self, subscribed, localstripe, settings, student_client, student, bigger_plan
    ):
        proxy = plan_change_proxy(localstripe, subscribed, bigger_plan)
        settings.STRIPE_API_BASE = proxy.url
        try:
            response = student_client.post(
                reverse("student:subscription_plan_change", args=[subscribed.pk]),
                {"plan": bigger_plan.pk},
                headers=IN_PLACE,
            )
        finally:
            proxy.close()

        text = text_of(response)
        assert response["HX-Retarget"] == "#payment-result"
        assert client_events(response) == {"balanceChanged"}
        assert "Payment received." in text and "(Monthly 12 h," in text
        upgrade = Payment.objects.get(kind=Payment.Kind.PLAN_CHANGE)
        assert upgrade.status == "succeeded"
        assert 0 < upgrade.minutes <= 240  # the 4 h difference, for what is left of the period
        assert Subscription.objects.get().plan == bigger_plan

    def test_the_page_says_which_changes_apply_now_and_which_from_the_next_period(
        self, subscribed, student_client, bigger_plan
    ):
        cheaper = make_subscription_plan("Monthly 4 h", minutes=240, price_cents=5900)

        text = text_of(student_client.get(PAGE))

        assert "Upgrade to Monthly 12 h now" in text
        assert "Switch to Monthly 4 h from" in text
        assert f'value="{cheaper.pk}"' in text
        assert "A downgrade applies from your next period" in text

    def test_a_plan_not_offered_is_refused(self, subscribed, student_client):
        weekly = make_subscription_plan("Weekly 2 h", minutes=120, price_cents=2900, interval="week")

        response = student_client.post(
            reverse("student:subscription_plan_change", args=[subscribed.pk]), {"plan": weekly.pk}, headers=IN_PLACE
        )

        assert NOT_FOR_SALE in text_of(response)
        assert Subscription.objects.get().plan == subscribed.plan

    @pytest.mark.parametrize("data", [{}, {"plan": "abc"}, {"plan": "0"}])
    def test_bad_input_is_a_message(self, subscribed, student_client, data):
        url = reverse("student:subscription_plan_change", args=[subscribed.pk])

        response = student_client.post(url, data, headers=IN_PLACE)

        assert response.status_code == 200 and NOT_FOR_SALE in text_of(response)


def past_due(subscription):
    """The next renewal declined, as Stripe reports it: an open invoice attempted once."""
    invoice = samples.invoice(subscription, status="open", period=samples.next_period(subscription))
    subscriptions.subscription_invoice_settle(invoice=stripe_gateway.invoice_read(invoice))
    subscription.refresh_from_db()
    assert subscription.status == "past_due"
    return invoice


class TestPayNow:
    def test_a_past_due_subscription_says_why_and_offers_to_pay_now(self, subscribed, student_client):
        past_due(subscribed)

        text = text_of(student_client.get(PAGE))

        assert 'data-testid="subscription-status">Past due<' in text
        assert "Your last renewal was not paid." in text
        assert "Your card was declined by your bank." in text
        assert "Pay €99.00 now with Visa 4242" in text

    def test_paying_now_credits_the_period_and_ends_the_dunning(
        self, subscribed, localstripe, settings, student_client, student
    ):
        invoice = past_due(subscribed)
        proxy = renewal_paid_proxy(localstripe, subscribed, invoice)
        settings.STRIPE_API_BASE = proxy.url
        try:
            response = student_client.post(reverse("student:subscription_pay_now", args=[subscribed.pk]), headers=HTMX)
        finally:
            proxy.close()

        assert "Payment received. 8 h added" in words_of(response)
        assert client_events(response) == {"balanceChanged"}
        assert Subscription.objects.get().status == "active"
        assert Lot.objects.count() == 2

    def test_with_nothing_to_pay_it_says_so(self, subscribed, student_client):
        response = student_client.post(reverse("student:subscription_pay_now", args=[subscribed.pk]), headers=HTMX)

        assert "There is nothing to pay on this subscription." in text_of(response)

    def test_without_htmx_a_refusal_is_a_message_on_the_subscription_page(self, subscribed, student_client):
        response = student_client.post(reverse("student:subscription_pay_now", args=[subscribed.pk]))

        assert response["Location"] == PAGE
        assert messages_of(response) == ["There is nothing to pay on this subscription."]


class TestRateLimits:
    @pytest.fixture(autouse=True)
    def one_change_an_hour(self, subscribed, settings):
        """Limits count in fixed windows: the clock runs from well inside one, so no test straddles two."""
        one_an_hour = {"subscription_change": {"user": "1/h", "ip": "5/h"}}
        settings.PORTAL_RATE_LIMITS = settings.PORTAL_RATE_LIMITS | one_an_hour
        with time_machine.travel(datetime(2026, 12, 1, 10, 0, 7, tzinfo=UTC), tick=True):
            yield

    def test_over_the_limit_the_notice_goes_on_top_and_the_subscription_stays(
        self, subscribed, localstripe, settings, student_client
    ):
        url = reverse("student:subscription_cancel", args=[subscribed.pk])
        student_client.post(url, headers=IN_PLACE)

        response = student_client.post(reverse("student:subscription_resume", args=[subscribed.pk]), headers=IN_PLACE)

        assert response.status_code == 429
        assert response["HX-Retarget"] == "#payment-result"
        assert "Too many attempts" in text_of(response)
        assert stripe_subscriptions(localstripe)[0]["cancel_at_period_end"] is True  # not resumed

    def test_the_confirmation_is_not_counted(self, subscribed, settings, student_client):
        url = reverse("student:subscription_cancel", args=[subscribed.pk])
        for _ in range(3):
            assert student_client.get(url, headers=IN_PLACE).status_code == 200

        assert student_client.post(url, headers=IN_PLACE).status_code == 200


class TestAnotherStudent:
    ACTIONS = ["subscription_cancel", "subscription_resume", "subscription_plan_change", "subscription_card_change"]

    @pytest.fixture
    def intruder(self, client):
        client.force_login(make_student("curious@example.com").user)
        return client

    @pytest.mark.parametrize("name", [*ACTIONS, "subscription_pay_now"])
    def test_their_subscription_is_not_found(self, subscribed, localstripe, intruder, name):
        url = reverse(f"student:{name}", args=[subscribed.pk])

        assert intruder.post(url, {"plan": 1, "payment_method": 1}, headers=IN_PLACE).status_code == 404
        assert intruder.post(url).status_code == 404
        assert not stripe_subscriptions(localstripe)[0]["cancel_at_period_end"]

    def test_their_cancel_confirmation_is_not_found(self, subscribed, intruder):
        assert intruder.get(reverse("student:subscription_cancel", args=[subscribed.pk])).status_code == 404

    def test_their_subscription_payment_is_not_found(self, subscribed, intruder):
        payment = subscribed.payments.get()

        assert intruder.post(reverse("student:payment_refresh", args=[payment.pk])).status_code == 404

    def test_their_page_shows_only_their_own(self, subscribed, intruder):
        text = text_of(intruder.get(PAGE))

        assert "You have no subscription." in text
        assert subscribed.payments.get().lot.name not in text
