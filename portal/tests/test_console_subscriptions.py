"""The console's subscriptions: the table and its filters, a subscription's page (invoices, lots,
refunds, timeline), Finance's cancel and resume with a reason, and the overview's figures.

Subscriptions are started at localstripe with a saved card, as a student starts one; what Stripe
sends later arrives as stored events in Stripe's payload shapes (billing.samples)."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import refunds, samples, stripe_gateway
from billing.audit import audit_record
from billing.events import webhook_event_ingest
from billing.formatting import date_text
from billing.models import AuditEntry, Plan, Subscription
from billing.reports import subscription_figures
from billing.subscriptions import subscribe_token_issue, subscription_start
from billing.tests.builders import add_card, make_plan, make_student
from conftest import console_sign_in
from portal.console.views.subscriptions import CANCEL_AT_PERIOD_END_DONE, CANCEL_NOW_DONE, RESUME_DONE
from portal.tests.htmx import client_redirect

pytestmark = pytest.mark.django_db
_keys = itertools.count(1)


def monthly_plan(**fields):
    return make_plan(
        name="Monthly 8 h", minutes=480, price_cents=12000, kind=Plan.Kind.SUBSCRIPTION, interval="month", **fields
    )


def weekly_plan(name="Weekly 2 h", price_cents=3000, **fields):
    return make_plan(
        name=name, minutes=120, price_cents=price_cents, kind=Plan.Kind.SUBSCRIPTION, interval="week", **fields
    )


def subscribe(localstripe, account, plan):
    """A subscription started as the student starts one: a saved card, then the subscribe button."""
    if not account.payment_methods.active().exists():
        add_card(account, localstripe)
    subscription = subscription_start(account=account, token=subscribe_token_issue(account=account, plan=plan))
    assert subscription.status == Subscription.Status.ACTIVE
    return subscription


@pytest.fixture
def subscribed(localstripe):
    account = make_student("sam@example.com", first_name="Sam", last_name="Rivera")
    return subscribe(localstripe, account, monthly_plan())


def page(client, name, *args, **query):
    return client.get(reverse(f"console:{name}", args=args), query)


def text(response):
    return response.content.decode()


def at_stripe(subscription):
    return stripe_gateway.subscription_retrieve(subscription.stripe_subscription_id)


class TestTheList:
    def test_it_shows_student_plan_status_renewal_and_amount(self, support_client, subscribed):
        body = text(page(support_client, "subscriptions"))

        assert "sam@example.com" in body and "Sam Rivera" in body
        assert "Monthly 8 h" in body
        assert '<span class="badge badge-ok">Active</span>' in body
        assert f"Renews {date_text(subscribed.current_period_end)}" in body
        assert "€120.00 a month" in body
        assert reverse("console:subscription", args=[subscribed.pk]) in body

    def test_the_console_nav_links_to_it(self, support_client, subscribed):
        body = text(page(support_client, "index"))

        assert f'<a href="{reverse("console:subscriptions")}"' in body

    def test_it_filters_by_status_and_plan(self, support_client, localstripe, subscribed):
        weekly = weekly_plan()
        other = subscribe(localstripe, make_student("wes@example.com"), weekly)
        Subscription.objects.filter(pk=other.pk).update(status=Subscription.Status.PAST_DUE)

        past_due = text(page(support_client, "subscriptions", status="past_due"))
        assert "wes@example.com" in past_due and "sam@example.com" not in past_due
        running = text(page(support_client, "subscriptions", status=["active", "trialing"]))
        assert "sam@example.com" in running and "wes@example.com" not in running
        by_plan = text(page(support_client, "subscriptions", plan=weekly.pk))
        assert "wes@example.com" in by_plan and "sam@example.com" not in by_plan

    def test_it_filters_those_that_cancel_at_period_end(self, support_client, localstripe, subscribed):
        other = subscribe(localstripe, make_student("wes@example.com"), weekly_plan())
        Subscription.objects.filter(pk=other.pk).update(cancel_at_period_end=True)

        body = text(page(support_client, "subscriptions", cancel_at_period_end="true"))

        assert "wes@example.com" in body and "sam@example.com" not in body
        assert '<span class="badge badge-warn">Cancels at period end</span>' in body
        renewing = text(page(support_client, "subscriptions", cancel_at_period_end="false"))
        assert "sam@example.com" in renewing and "wes@example.com" not in renewing

    @pytest.mark.parametrize("query", [{"q": "SAM@example"}, {"q": "rivera"}, {"q": "sam riv"}, {"q": "stripe-id"}])
    def test_it_searches_by_email_name_and_stripe_id(self, support_client, localstripe, subscribed, query):
        subscribe(localstripe, make_student("wes@example.com", first_name="Wes"), weekly_plan())
        if query["q"] == "stripe-id":
            query = {"q": subscribed.stripe_subscription_id}

        body = text(page(support_client, "subscriptions", **query))

        assert "sam@example.com" in body and "wes@example.com" not in body

    @pytest.mark.parametrize(
        ("query", "error"),
        [
            ({"plan": "not-a-plan"}, "Plan: Select a valid choice."),
            ({"plan": "1" * 30}, "Plan: Select a valid choice."),
            ({"status": "bogus"}, "Status: Select a valid choice. bogus is not one of the available choices."),
            ({"q": "9" * 300}, "Search: Ensure this value has at most 254 characters (it has 300)."),
        ],
    )
    def test_bad_filter_input_is_explained_and_left_out(self, support_client, subscribed, query, error):
        response = page(support_client, "subscriptions", **query)

        assert response.status_code == 200
        assert error in text(response)
        assert "That filter is left out." in text(response)

    def test_an_htmx_filter_request_gets_only_the_table(self, support_client, subscribed):
        response = support_client.get(
            reverse("console:subscriptions"), {"q": "sam"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="console-table"
        )

        assert text(response).lstrip().startswith('<div id="console-table"')
        assert "sam@example.com" in text(response)
        assert "<nav" not in text(response)


class TestTheSubscriptionPage:
    def test_it_shows_its_facts_invoices_and_lots(self, support_client, subscribed):
        invoice = subscribed.payments.get()

        body = text(page(support_client, "subscription", subscribed.pk))

        assert "Monthly 8 h: 8 h for €120.00, monthly" in body
        assert "Visa 4242" in body
        assert f"<code>{subscribed.stripe_subscription_id}</code>" in body
        assert "<dt>Cancel at period end</dt><dd>No</dd>" in body
        assert f"{date_text(subscribed.current_period_start)} – {date_text(subscribed.current_period_end)}" in body
        # Its invoice, linked to the payment's own page, and the period's lot.
        assert reverse("console:payment", args=[invoice.pk]) in body
        assert f"<code>{invoice.stripe_invoice_id}</code>" in body
        assert "Subscription period" in body
        assert invoice.lot.name in body and invoice.lot.name.startswith("Monthly 8 h, ")
        assert "No refunds." in body

    def test_its_timeline_has_stripes_events_about_it_and_its_invoices_only(self, support_client, subscribed):
        invoice = subscribed.payments.get()
        subscription_event, _ = webhook_event_ingest(
            event=samples.event("customer.subscription.updated", samples.subscription(subscribed))
        )
        invoice_event, _ = webhook_event_ingest(
            event=samples.event("invoice.paid", samples.invoice(subscribed, invoice_id=invoice.stripe_invoice_id))
        )
        someone_elses, _ = webhook_event_ingest(
            event=samples.event("invoice.paid", {"id": "in_someone_else", "object": "invoice"})
        )

        body = text(page(support_client, "subscription", subscribed.pk))

        assert "Subscription to Monthly 8 h started" in body
        assert "Stripe event customer.subscription.updated" in body
        assert "Stripe event invoice.paid" in body
        assert reverse("console:webhook", args=[subscription_event.pk]) in body
        assert reverse("console:webhook", args=[invoice_event.pk]) in body
        assert reverse("console:webhook", args=[someone_elses.pk]) not in body

    def test_it_lists_the_refunds_of_its_invoices(self, support_client, finance_user, subscribed):
        invoice = subscribed.payments.get()
        refunds.refund_issue(
            payment=invoice, amount_cents=3000, minutes=120, reason="Two sessions cancelled.", actor=finance_user
        )

        body = text(page(support_client, "subscription", subscribed.pk))

        assert "€30.00" in body and "2 h taken back" in body and "Two sessions cancelled." in body
        assert "No refunds." not in body

    def test_a_past_due_subscription_says_why(self, support_client, subscribed):
        Subscription.objects.filter(pk=subscribed.pk).update(
            status=Subscription.Status.PAST_DUE,
            failure_code="insufficient_funds",
            failure_message="Your card has insufficient funds.",
        )

        body = text(page(support_client, "subscription", subscribed.pk))

        assert '<span class="badge badge-danger">Past due</span>' in body
        assert "The last renewal was not paid: Your card has insufficient funds." in body

    def test_support_sees_no_actions_and_finance_sees_them(self, client, support_user, finance_user, subscribed):
        cancel_url = reverse("console:subscription_cancel_now", args=[subscribed.pk])
        console_sign_in(client, support_user)
        assert cancel_url not in text(page(client, "subscription", subscribed.pk))
        client.logout()
        console_sign_in(client, finance_user)
        body = text(page(client, "subscription", subscribed.pk))
        assert cancel_url in body
        assert reverse("console:subscription_cancel_at_period_end", args=[subscribed.pk]) in body
        assert reverse("console:subscription_resume", args=[subscribed.pk]) not in body  # nothing to resume

    def test_an_unknown_subscription_is_404(self, support_client, subscribed):
        assert page(support_client, "subscription", subscribed.pk + 1000).status_code == 404

    def test_the_students_page_lists_their_subscriptions(self, support_client, subscribed):
        body = text(page(support_client, "student", subscribed.account_id))

        assert reverse("console:subscription", args=[subscribed.pk]) in body
        assert '<span class="badge badge-ok">Active</span>' in body


class TestInvoicePayments:
    def test_the_payment_list_shows_the_kind_period_and_subscription(self, support_client, subscribed):
        body = text(page(support_client, "payments"))

        link = reverse("console:subscription", args=[subscribed.pk])
        assert f'<a href="{link}" hx-boost="false">Subscription period</a>' in body

    def test_the_payment_page_shows_the_kind_period_invoice_and_subscription(self, support_client, subscribed):
        invoice = subscribed.payments.get()

        body = text(page(support_client, "payment", invoice.pk))

        assert "Monthly 8 h (Subscription period)" in body
        assert reverse("console:subscription", args=[subscribed.pk]) in body
        assert f"subscription period, {date_text(invoice.period_start)} – {date_text(invoice.period_end)}" in body
        assert f"<code>{invoice.stripe_invoice_id}</code>" in body


class TestStaffActions:
    def url(self, name, subscription):
        return reverse(f"console:subscription_{name}", args=[subscription.pk])

    def test_finance_cancels_at_period_end_then_resumes_each_audited_and_at_stripe(self, finance_client, subscribed):
        response = finance_client.post(
            self.url("cancel_at_period_end", subscribed), {"reason": "Family moving abroad."}
        )

        assert response.status_code == 302
        assert response["Location"] == reverse("console:subscription", args=[subscribed.pk])
        subscribed.refresh_from_db()
        assert subscribed.cancel_at_period_end and subscribed.status == Subscription.Status.ACTIVE
        assert at_stripe(subscribed).cancel_at_period_end is True
        page_after = text(finance_client.get(response["Location"]))
        assert CANCEL_AT_PERIOD_END_DONE in page_after
        assert "Cancels at period end" in page_after
        assert "fiona.finance@example.com: subscription.cancel_at_period_end" in page_after

        response = finance_client.post(self.url("resume", subscribed), {"reason": "They are staying after all."})

        assert response.status_code == 302
        subscribed.refresh_from_db()
        assert not subscribed.cancel_at_period_end
        assert at_stripe(subscribed).cancel_at_period_end is False
        assert RESUME_DONE in text(finance_client.get(response["Location"]))
        entries = AuditEntry.objects.filter(target_type="subscription", target_id=str(subscribed.pk)).order_by("id")
        assert [(entry.action, entry.reason, entry.actor_email) for entry in entries] == [
            ("subscription.cancel_at_period_end", "Family moving abroad.", "fiona.finance@example.com"),
            ("subscription.resume", "They are staying after all.", "fiona.finance@example.com"),
        ]
        assert entries[0].before == {"status": "active", "cancel_at_period_end": False}
        assert entries[0].after == {"status": "active", "cancel_at_period_end": True}
        assert entries[0].account_id == subscribed.account_id

    def test_finance_ends_it_now_and_the_hours_stay(self, finance_client, subscribed):
        balance = subscribed.account.balance_minutes

        response = finance_client.post(
            self.url("cancel_now", subscribed), {"reason": "Chargeback risk."}, HTTP_HX_REQUEST="true"
        )

        assert client_redirect(response) == reverse("console:subscription", args=[subscribed.pk])
        subscribed.refresh_from_db()
        assert subscribed.status == Subscription.Status.CANCELED
        assert at_stripe(subscribed).status == "canceled"
        subscribed.account.refresh_from_db()
        assert subscribed.account.balance_minutes == balance == 480
        body = text(page(finance_client, "subscription", subscribed.pk))
        assert CANCEL_NOW_DONE in body
        assert '<span class="badge badge-muted">Ended</span>' in body
        assert self.url("cancel_now", subscribed) not in body  # nothing left to do to it
        entry = AuditEntry.objects.get(action="subscription.cancel_now")
        assert entry.reason == "Chargeback risk." and entry.target_label.startswith(f"Subscription {subscribed.pk}")
        audit_log = text(page(finance_client, "audit"))
        assert f'<a href="{reverse("console:subscription", args=[subscribed.pk])}" hx-boost="false">' in audit_log

    def test_the_action_opens_as_a_form_in_the_dialog(self, finance_client, subscribed):
        response = finance_client.get(self.url("cancel_now", subscribed), HTTP_HX_REQUEST="true")

        assert response.status_code == 200
        assert "End subscription" in text(response) and "This cannot be undone." in text(response)
        assert 'name="reason"' in text(response)
        assert "<nav" not in text(response)

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_a_missing_reason_is_refused_with_a_message(self, finance_client, subscribed, reason):
        response = finance_client.post(self.url("cancel_now", subscribed), {"reason": reason})

        assert response.status_code == 200
        assert "This field is required." in text(response)
        subscribed.refresh_from_db()
        assert subscribed.status == Subscription.Status.ACTIVE
        assert at_stripe(subscribed).status == "active"
        assert not AuditEntry.objects.exists()

    @pytest.mark.parametrize("name", ["cancel_now", "cancel_at_period_end", "resume"])
    def test_support_is_refused_and_nothing_changes(self, support_client, subscribed, name):
        for response in (
            support_client.get(self.url(name, subscribed)),
            support_client.post(self.url(name, subscribed), {"reason": "I am only Support."}),
        ):
            assert response.status_code == 403
            assert "Only the Finance team can do this" in text(response)
        subscribed.refresh_from_db()
        assert subscribed.status == Subscription.Status.ACTIVE and not subscribed.cancel_at_period_end
        remote = at_stripe(subscribed)
        assert remote.status == "active" and remote.cancel_at_period_end is False
        assert not AuditEntry.objects.exists()

    def test_resuming_what_does_not_end_says_why(self, finance_client, subscribed):
        response = finance_client.post(self.url("resume", subscribed), {"reason": "Just in case."})

        assert response.status_code == 200
        assert "This subscription is not set to end, so there is nothing to resume." in text(response)
        assert not AuditEntry.objects.exists()

    def test_an_ended_subscription_cannot_be_changed(self, finance_client, subscribed):
        finance_client.post(self.url("cancel_now", subscribed), {"reason": "Ended."})

        response = finance_client.post(self.url("cancel_at_period_end", subscribed), {"reason": "Again."})

        assert response.status_code == 200
        assert "This subscription has ended or has not started; nothing was changed." in text(response)
        assert AuditEntry.objects.count() == 1

    def test_an_unknown_subscription_is_404(self, finance_client, subscribed):
        missing = Subscription(pk=subscribed.pk + 1000)
        assert finance_client.post(self.url("cancel_now", missing), {"reason": "x"}).status_code == 404


def rows(plan, *statuses, cancel_at_period_end=False):
    """Subscriptions in the given states, as the figures read them (no Stripe needed to count)."""
    for status in statuses:
        Subscription.objects.create(
            account=make_student(),
            plan=plan,
            status=status,
            cancel_at_period_end=cancel_at_period_end,
            idempotency_key=f"figures-{next(_keys)}",
        )


class TestOverviewFigures:
    def test_monthly_revenue_counts_weekly_plans_at_52_weeks_over_12_months(self, db):
        rows(monthly_plan(), "active", "trialing")
        rows(monthly_plan(), "active", cancel_at_period_end=True)  # pays until its period ends
        rows(weekly_plan(price_cents=2999), "active", "active")
        rows(monthly_plan(), "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired")

        figures = subscription_figures()

        assert figures.running == 5
        assert figures.overdue == 2
        # 3 x 120.00 a month, and 2 x 29.99 a week: 59.98 x 52 / 12 = 259.9133..., rounded once: 259.91
        assert figures.monthly_revenue == [("EUR", 3 * 12000 + 25991)]

    def test_each_currency_has_its_own_figure(self, db):
        rows(monthly_plan(), "active")
        rows(weekly_plan(price_cents=1000, currency="USD"), "active")

        # 10.00 x 52 / 12 = 43.333...: 43.33
        assert subscription_figures().monthly_revenue == [("EUR", 12000), ("USD", 4333)]

    def test_the_total_is_rounded_to_the_nearest_cent(self, db):
        rows(weekly_plan(price_cents=2), "active")  # 2 x 52 / 12 = 8.67: 9
        rows(weekly_plan(name="Tiny", price_cents=1, currency="USD"), "active")  # 1 x 52 / 12 = 4.33: 4

        assert dict(subscription_figures().monthly_revenue) == {"EUR": 9, "USD": 4}

    def test_the_figures_cost_one_query_however_many_subscriptions(self, db, django_assert_num_queries):
        monthly, weekly = monthly_plan(), weekly_plan()
        rows(monthly, "active", "past_due")
        with django_assert_num_queries(1):
            few = subscription_figures()
        rows(weekly, *["active"] * 10, "unpaid")
        rows(weekly_plan(name="Dollar weekly", currency="USD"), "active", "active")
        with django_assert_num_queries(1):
            many = subscription_figures()
        assert (few.running, many.running, many.overdue) == (1, 13, 2)

    def test_the_overview_shows_them_and_links_to_the_past_due_list(self, support_client, db):
        rows(monthly_plan(), "active", "past_due")
        rows(weekly_plan(), "active")  # 30.00 x 52 / 12 = 130.00

        body = text(page(support_client, "index"))

        assert "Active subscriptions</span><strong>2</strong>" in body
        assert "<strong>€250.00</strong>" in body
        past_due = f"{reverse('console:subscriptions')}?status=past_due&status=unpaid"
        assert f'<a class="figure figure-warn" href="{past_due}">' in body
        assert "Subscriptions past due</span><strong>1</strong>" in body


def queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


class TestQueryBudgets:
    def test_the_list_does_not_query_per_row(self, support_client, db):
        rows(monthly_plan(), "active", "past_due")
        url = reverse("console:subscriptions")
        few = queries(support_client, url)

        rows(weekly_plan(), *["active"] * 10, "canceled")

        assert queries(support_client, url) == few

    def test_the_subscription_page_does_not_query_per_row(self, finance_client, finance_user, subscribed):
        url = reverse("console:subscription", args=[subscribed.pk])
        few = queries(finance_client, url)

        invoice = subscribed.payments.get()
        for _ in range(5):
            webhook_event_ingest(event=samples.event("customer.subscription.updated", samples.subscription(subscribed)))
            webhook_event_ingest(
                event=samples.event("invoice.paid", samples.invoice(subscribed, invoice_id=invoice.stripe_invoice_id))
            )
            audit_record(actor=finance_user, action="subscription.resume", target=subscribed, reason="more")
        refunds.refund_issue(payment=invoice, amount_cents=100, minutes=0, reason="Goodwill.", actor=finance_user)
        refunds.refund_issue(payment=invoice, amount_cents=200, minutes=0, reason="Goodwill.", actor=finance_user)

        assert queries(finance_client, url) == few
