"""Erasing a student at their request (Finance, audited, confirmed by typing their email): their
Stripe customer is really deleted at the stand-in, everything that named them is anonymised, the
financial records stay and still add up, and the account can neither sign in nor be charged. Each
refusal says why and changes nothing; Stripe out of reach changes nothing either."""

import io
import json
from urllib.parse import quote_plus

import pytest
import requests
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.management import call_command
from django.db.models import Sum
from django.urls import reverse
from django.utils.html import escape

from alerts.models import STUDENT_KINDS, EmailOptOut, Notification
from billing import payments, samples, topups
from billing.audit import audit_record
from billing.disputes.holds import dispute_record
from billing.errors import AccountBlocked, AccountErased, ReasonRequired
from billing.events import webhook_event_ingest
from billing.models import (
    Account,
    AuditEntry,
    AutoTopUp,
    AutoTopUpEvent,
    Dispute,
    LedgerEntry,
    Lot,
    Payment,
    PaymentMethod,
    Receipt,
    Refund,
    WebhookEvent,
)
from billing.models.webhooks import REDACTED
from billing.privacy import (
    DISPUTE_OPEN,
    ERASED_BLOCK_REASON,
    PAYMENT_IN_FLIGHT,
    PAYMENT_IN_REVIEW,
    SUBSCRIPTION_LIVE,
    ErasureRefused,
)
from billing.tests.builders import PASSWORD, make_paid_payment, make_student, make_subscription_plan, subscribe
from billing.tests.localstripe import SECRET_KEY
from billing.tests.network import charge_answers_lost
from billing.tests.webhook_delivery import deliver
from portal.console.views.privacy import ERASED
from portal.models import SignIn, User
from portal.privacy import ALREADY_ERASED, EMAIL_MISMATCH, STAFF_ACCOUNT, STRIPE_FAILED, erased_email, student_erase
from portal.retention import retention_apply
from portal.tests.privacy_history import ADDRESS, EMAIL, student_with_history

pytestmark = pytest.mark.django_db

REASON = "Asked by email on 3 March, ticket 4411"


@pytest.fixture
def history(localstripe, finance_user):
    return student_with_history(localstripe, finance_user, dispute=True)


def erase(history, finance_user, **changes):
    arguments = {"email": EMAIL, "reason": REASON, "ip_address": "198.51.100.4"} | changes
    return student_erase(account=history.account, actor=finance_user, **arguments)


def stripe_customer(localstripe, customer_id):
    """The customer as the stand-in has it, or None once it is deleted (404)."""
    response = requests.get(f"{localstripe.url}/v1/customers/{customer_id}", auth=(SECRET_KEY, ""), timeout=5)
    return None if response.status_code == 404 else response.json()


def unchanged_state(account):
    """What an erasure changes: equal before and after a refused one."""
    user = User.objects.get(pk=account.user_id)
    account = Account.objects.get(pk=account.pk)
    return {
        "user": (user.email, user.first_name, user.last_name, user.is_active, user.has_usable_password()),
        "erased": user.erased_at,
        "account": (account.billing_address, account.tax_id, account.blocked_at, account.stripe_customer_id),
        "cards": list(PaymentMethod.objects.filter(account=account).values_list("pk", "removed_at")),
        "sign_ins": SignIn.objects.filter(user=user).count(),
        "addresses": EmailAddress.objects.filter(user=user).count(),
        "audit": AuditEntry.objects.count(),
    }


def financial_records(account):
    """Everything erasure must keep as it was."""
    return {
        "receipts": list(Receipt.objects.filter(account=account).order_by("pk").values_list("number", "snapshot")),
        "payments": list(
            Payment.objects.filter(account=account)
            .order_by("pk")
            .values_list("amount_cents", "currency", "status", "stripe_payment_intent_id", "settled_at")
        ),
        "refunds": list(
            Refund.objects.filter(payment__account=account).values_list("amount_cents", "status", "stripe_refund_id")
        ),
        "disputes": list(
            Dispute.objects.filter(payment__account=account).values_list("amount_cents", "status", "stripe_dispute_id")
        ),
        "lots": list(Lot.objects.filter(account=account).order_by("pk").values_list("pk", "minutes_remaining")),
        "ledger": list(LedgerEntry.objects.filter(account=account).order_by("pk").values_list("pk", "minutes")),
    }


# What goes


def test_the_stripe_customer_is_deleted_at_stripe(history, finance_user, localstripe):
    customer_id = history.account.stripe_customer_id
    assert stripe_customer(localstripe, customer_id)["email"] == EMAIL

    erase(history, finance_user)

    assert stripe_customer(localstripe, customer_id) is None
    assert Account.objects.get(pk=history.account.pk).stripe_customer_id == ""


def test_the_user_names_no_one_any_more(history, finance_user):
    erase(history, finance_user)

    user = User.objects.get(pk=history.user.pk)
    assert user.email == erased_email(user) == f"erased-{user.pk}@erased.invalid"
    assert (user.first_name, user.last_name, user.language, user.time_zone) == ("", "", "", "")
    assert not user.has_usable_password() and not user.is_active and user.last_login is None
    assert user.erased_at is not None
    assert not EmailAddress.objects.filter(user=user).exists()
    assert not Authenticator.objects.filter(user=user).exists()
    assert not SignIn.objects.filter(user=user).exists()


def test_billing_details_cards_and_automatic_top_up_are_gone(history, finance_user):
    erase(history, finance_user)

    account = Account.objects.get(pk=history.account.pk)
    assert (account.billing_address, account.tax_id, account.statement_emails) == ("", "", False)
    # The paid payment's card keeps its row (the payment names it), put aside like a removed card.
    assert not PaymentMethod.objects.filter(account=account).active().exists()
    setting = AutoTopUp.objects.get(account=account)
    assert setting.status == AutoTopUp.Status.OFF
    assert setting.events.filter(kind=AutoTopUpEvent.Kind.TURNED_OFF, actor=finance_user).exists()
    assert (account.blocked_at is not None, account.blocked_reason) == (True, ERASED_BLOCK_REASON)
    assert Dispute.objects.get(payment__account=account).evidence == {}


def test_a_card_nothing_points_at_is_deleted(history, finance_user):
    unused = PaymentMethod.objects.create(
        account=history.account, stripe_payment_method_id="pm_spare", brand="mastercard", last4="4444",
        exp_month=1, exp_year=2031,
    )  # fmt: skip

    erase(history, finance_user)

    assert not PaymentMethod.objects.filter(pk=unused.pk).exists()
    assert PaymentMethod.objects.filter(pk=history.payment.payment_method_id).exists()


def test_their_alerts_say_nothing_and_none_is_emailed(history, finance_user):
    erase(history, finance_user)

    (alert,) = Notification.objects.filter(recipient=history.user)
    assert (alert.title, alert.body, alert.link, alert.params) == (REDACTED, "", "", None)
    assert alert.email_status == Notification.Email.SKIPPED
    assert set(EmailOptOut.objects.filter(user=history.user).values_list("kind", flat=True)) == set(STUDENT_KINDS)


def test_staff_alerts_about_them_lose_their_email(history, finance_user):
    alert = Notification.objects.create(
        recipient=finance_user,
        kind=Notification.Kind.STAFF_FRAUD_FLAG,
        dedupe_key="staff-flag:1:1",
        params={"student": EMAIL, "rule": "attempts"},
        title=f"New fraud flag: {EMAIL}",
        body=f"{EMAIL}: many payment attempts in an hour.",
        link=f"/console/fraud/?status=open&q={quote_plus(EMAIL)}",
    )

    erase(history, finance_user)

    alert.refresh_from_db()
    anonymous = erased_email(history.user)
    assert alert.params == {"student": anonymous, "rule": "attempts"}
    assert EMAIL not in alert.stored_title + alert.stored_body + alert.link
    assert alert.link.endswith(quote_plus(anonymous))


def test_the_audit_log_keeps_what_was_done_without_their_email_or_name(history, finance_user):
    actions_before = list(AuditEntry.objects.order_by("pk").values_list("action", "actor", "target_id"))

    erase(history, finance_user)

    entries = AuditEntry.objects.filter(account=history.account).order_by("pk")
    written = json.dumps(list(entries.values("target_label", "reason", "actor_email", "before", "after")))
    assert EMAIL not in written and "Ana" not in written and "Silva" not in written
    assert list(entries.values_list("action", "actor", "target_id"))[: len(actions_before)] == actions_before
    erasure = entries.get(action="privacy.erase")
    assert (erasure.actor, erasure.reason, erasure.ip_address) == (finance_user, REASON, "198.51.100.4")
    assert erasure.target_label == f"Account of {erased_email(history.user)}"
    assert entries.filter(action="account.block").exists()


def test_what_staff_typed_about_them_elsewhere_loses_their_name(history, finance_user):
    erase(history, finance_user)

    assert Refund.objects.get(pk=history.refund.pk).reason == f"{REDACTED} asked on the phone"


def test_a_name_inside_another_word_is_left_alone(history, finance_user):
    audit_record(actor=finance_user, action="account.note", target=history.account, reason="Analysis of Ana's sessions")

    erase(history, finance_user)

    reasons = AuditEntry.objects.filter(account=history.account).values_list("reason", flat=True)
    assert f"Analysis of {REDACTED}'s sessions" in reasons


def test_a_staff_email_that_holds_their_name_is_left_alone(history, finance_user):
    finance_user.email = "ana.costa@example.com"
    finance_user.save()
    audit_record(actor=finance_user, action="account.note", target=history.account, reason="Called Ana.")

    erase(history, finance_user)

    note = AuditEntry.objects.get(account=history.account, action="account.note")
    assert (note.actor_email, note.reason) == ("ana.costa@example.com", f"Called {REDACTED}.")


def test_their_stripe_events_lose_the_personal_fields_and_keep_the_rest(history, finance_user):
    customer_id = history.account.stripe_customer_id
    theirs = _ingest(
        samples.event(
            "customer.updated",
            {"id": customer_id, "object": "customer", "email": EMAIL, "name": "Ana", "address": {"line1": ADDRESS}},
        )
    )
    charge = _ingest(
        samples.event(
            "charge.succeeded",
            {
                "id": "ch_1",
                "object": "charge",
                "payment_intent": history.payment.stripe_payment_intent_id,
                "amount": 15000,
                "billing_details": {"email": EMAIL, "name": "Ana Silva"},
                "receipt_email": EMAIL,
            },
        )
    )
    someone_else = _ingest(
        samples.event("customer.updated", {"id": "cus_other", "object": "customer", "email": "bruno@example.com"})
    )

    erase(history, finance_user)

    customer = WebhookEvent.objects.get(pk=theirs.pk).payload["data"]["object"]
    assert customer == {"id": customer_id, "object": "customer"} | dict.fromkeys(["email", "name", "address"], REDACTED)
    charged = WebhookEvent.objects.get(pk=charge.pk)
    assert charged.payload["data"]["object"]["billing_details"] == REDACTED
    assert charged.payload["data"]["object"]["amount"] == 15000
    assert (charged.type, charged.stripe_event_id) == (charge.type, charge.stripe_event_id)
    assert WebhookEvent.objects.get(pk=someone_else.pk).payload == someone_else.payload


def test_the_customer_deleted_event_that_follows_loses_their_email_at_the_next_retention_run(
    history, finance_user, client, django_capture_on_commit_callbacks
):
    customer = {
        "id": history.account.stripe_customer_id,
        "object": "customer",
        "email": EMAIL,
        "name": "Ana Silva",
        "metadata": {"account_id": str(history.account.pk)},
    }
    erase(history, finance_user)
    late = samples.event("customer.deleted", customer)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, late).status_code == 200

    run = retention_apply()

    event = WebhookEvent.objects.get(stripe_event_id=late["id"])
    assert event.status == WebhookEvent.Status.IGNORED  # no account has that customer any more
    assert event.payload["data"]["object"]["email"] == REDACTED
    assert run.late_events_redacted == 1
    assert retention_apply().late_events_redacted == 0


def _ingest(stripe_event):
    event, _ = webhook_event_ingest(event=stripe_event)
    return event


# What stays


def test_the_financial_records_stay_and_still_add_up(history, finance_user):
    before = financial_records(history.account)

    erase(history, finance_user)

    assert financial_records(history.account) == before
    account = Account.objects.get(pk=history.account.pk)
    entries = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("minutes"))["total"]
    lots = Lot.objects.filter(account=account).aggregate(total=Sum("minutes_remaining"))["total"]
    assert account.balance_minutes == entries == lots == 600 - 90 - 60
    out = io.StringIO()
    call_command("ledger_check", stdout=out)  # raises CommandError for an account out of balance
    assert out.getvalue().strip() == "All accounts balance."


def test_receipts_keep_the_name_and_address_they_were_issued_with(history, finance_user):
    erase(history, finance_user)

    snapshot = Receipt.objects.get(payment=history.payment).snapshot
    assert (snapshot["student_email"], snapshot["student_name"], snapshot["student_address"]) == (
        EMAIL,
        "Ana Silva",
        ADDRESS,
    )


# An erased account cannot sign in or be charged


def test_it_cannot_sign_in(history, finance_user, client):
    login = reverse("account_login")
    accepted = client.post(login, {"login": EMAIL, "password": PASSWORD})
    assert accepted["Location"] == reverse("mfa_authenticate")  # the password was right: on to the code
    client.logout()

    erase(history, finance_user)

    for email in (EMAIL, erased_email(history.user)):
        response = client.post(login, {"login": email, "password": PASSWORD})
        assert response.status_code == 200, email  # the sign-in form again, with its error
        assert "_auth_user_id" not in client.session


def test_its_open_sessions_are_signed_out(history, finance_user, client):
    client.force_login(history.user)
    assert client.get(reverse("student:dashboard")).status_code == 200

    erase(history, finance_user)

    response = client.get(reverse("student:dashboard"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_a_payment_is_refused_and_stripe_is_not_asked(history, finance_user, localstripe):
    erase(history, finance_user)
    intents = len(localstripe.payment_intents())
    token = payments.payment_token_issue(account=history.account, plan=history.payment.plan, kind="purchase")

    with pytest.raises(AccountBlocked):
        payments.payment_start(account=Account.objects.get(pk=history.account.pk), token=token)

    assert len(localstripe.payment_intents()) == intents
    assert Payment.objects.filter(account=history.account).count() == 1


def test_finance_cannot_unblock_it(history, finance_user, finance_client):
    erase(history, finance_user)

    response = finance_client.post(
        reverse("console:student_unblock", args=[history.account.pk]), {"reason": "Asked to buy again"}
    )

    assert escape(str(AccountErased.MESSAGE)) in response.content.decode()
    assert Account.objects.get(pk=history.account.pk).blocked_at is not None


def test_automatic_top_up_charges_nothing_and_cannot_be_turned_on_again(history, finance_user, localstripe):
    erase(history, finance_user)
    account = Account.objects.get(pk=history.account.pk)

    assert topups.auto_top_ups_check(account_ids=[account.pk]) == []
    assert topups.auto_top_ups_scan() == []
    with pytest.raises(topups.AutoTopUpRefused):
        topups.auto_top_up_save(
            account=account,
            threshold_minutes=600,
            plan=history.payment.plan,
            card=PaymentMethod.objects.get(pk=history.payment.payment_method_id),
            monthly_count_cap=1,
            monthly_amount_cap_cents=15000,
            actor=history.user,
        )
    assert Payment.objects.filter(account=account).count() == 1


# Refused: each says why and changes nothing


def test_a_staff_account_is_refused(localstripe, finance_user, support_user):
    account = Account.objects.get_or_create(user=support_user)[0]
    before = unchanged_state(account)

    with pytest.raises(ErasureRefused, match=STAFF_ACCOUNT):
        student_erase(account=account, actor=finance_user, email=support_user.email, reason=REASON)

    assert unchanged_state(account) == before


def test_an_account_with_a_payment_in_flight_is_refused(localstripe, settings, finance_user):
    account = make_student("paying@example.com")
    with charge_answers_lost(localstripe, settings):
        in_flight = make_paid_payment(localstripe, account=account)
    assert in_flight.status == Payment.Status.PROCESSING
    customer_id = Account.objects.get(pk=account.pk).stripe_customer_id
    before = unchanged_state(account)

    with pytest.raises(ErasureRefused, match=PAYMENT_IN_FLIGHT):
        student_erase(account=account, actor=finance_user, email="paying@example.com", reason=REASON)

    assert unchanged_state(account) == before
    assert stripe_customer(localstripe, customer_id) is not None  # nothing reached Stripe either


def test_an_account_with_a_payment_waiting_for_review_is_refused(history, finance_user):
    Payment.objects.filter(pk=history.payment.pk).update(status=Payment.Status.NEEDS_REVIEW)
    before = unchanged_state(history.account)

    with pytest.raises(ErasureRefused, match=PAYMENT_IN_REVIEW):
        erase(history, finance_user)

    assert unchanged_state(history.account) == before


def test_an_account_with_a_live_subscription_is_refused_until_it_is_cancelled(localstripe, finance_user):
    account = make_student("subscriber@example.com")
    subscribe(account, make_subscription_plan(), localstripe)
    before = unchanged_state(account)

    with pytest.raises(ErasureRefused, match=SUBSCRIPTION_LIVE):
        student_erase(account=account, actor=finance_user, email="subscriber@example.com", reason=REASON)

    assert unchanged_state(account) == before


def test_an_account_with_an_open_dispute_is_refused(localstripe, finance_user):
    history = student_with_history(localstripe, finance_user, dispute=False)
    dispute_record(payment=history.payment, dispute_object=samples.dispute(history.payment), event_type="x")
    before = unchanged_state(history.account)

    with pytest.raises(ErasureRefused, match=DISPUTE_OPEN):
        erase(history, finance_user)

    assert unchanged_state(history.account) == before


def test_a_second_erasure_is_refused(history, finance_user):
    erase(history, finance_user)
    before = unchanged_state(history.account)

    with pytest.raises(ErasureRefused, match=ALREADY_ERASED.split("%")[0]):
        erase(history, finance_user, email=erased_email(history.user))

    assert unchanged_state(history.account) == before


def test_a_wrong_confirmation_email_is_refused_before_stripe_is_asked(history, finance_user, localstripe):
    before = unchanged_state(history.account)

    with pytest.raises(ErasureRefused, match=EMAIL_MISMATCH):
        erase(history, finance_user, email="ana@example.com")

    assert unchanged_state(history.account) == before
    assert stripe_customer(localstripe, history.account.stripe_customer_id) is not None


def test_a_reason_is_required(history, finance_user):
    with pytest.raises(ReasonRequired):
        erase(history, finance_user, reason="  ")


def test_the_confirmation_email_is_read_as_typed_in_any_case(history, finance_user):
    erase(history, finance_user, email=f"  {EMAIL.upper()} ")

    assert User.objects.get(pk=history.user.pk).erased_at is not None


# Stripe


def test_with_stripe_out_of_reach_nothing_is_erased_and_a_retry_completes_it(
    history, finance_user, localstripe, settings
):
    before, records = unchanged_state(history.account), financial_records(history.account)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: the request never leaves

    with pytest.raises(ErasureRefused, match=STRIPE_FAILED.split(" (")[0]):
        erase(history, finance_user)

    assert unchanged_state(history.account) == before
    settings.STRIPE_API_BASE = localstripe.url
    assert stripe_customer(localstripe, history.account.stripe_customer_id) is not None
    erase(history, finance_user)
    assert User.objects.get(pk=history.user.pk).erased_at is not None
    assert financial_records(history.account) == records


def test_a_customer_stripe_already_deleted_counts_as_deleted(history, finance_user, localstripe):
    customer_id = history.account.stripe_customer_id
    requests.delete(f"{localstripe.url}/v1/customers/{customer_id}", auth=(SECRET_KEY, ""), timeout=5)

    erase(history, finance_user)

    assert User.objects.get(pk=history.user.pk).erased_at is not None


def test_a_student_who_never_had_a_stripe_customer_is_erased_without_asking_stripe(finance_user, settings):
    account = make_student("never.paid@example.com")
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # would fail if asked

    student_erase(account=account, actor=finance_user, email="never.paid@example.com", reason=REASON)

    assert User.objects.get(pk=account.user_id).erased_at is not None


# The console


def erase_url(account):
    return reverse("console:student_erase", args=[account.pk])


def test_the_confirmation_says_what_goes_and_what_stays(finance_client, history):
    text = finance_client.get(erase_url(history.account)).content.decode()

    assert f"Erase {EMAIL}" in text
    assert "Erased" in text and "Kept" in text and "tax authorities" in text
    assert 'name="email"' in text and 'name="reason"' in text and "Erase the student" in text


def test_in_the_dialog_only_the_form_comes_back(finance_client, history):
    response = finance_client.get(erase_url(history.account), headers={"HX-Request": "true"})

    text = response.content.decode()
    assert 'id="dialog-title"' in text and "<html" not in text


def test_finance_erases_from_the_console(finance_client, history):
    response = finance_client.post(erase_url(history.account), {"email": EMAIL, "reason": REASON})

    assert response.status_code == 302 and response["Location"] == reverse("console:student", args=[history.account.pk])
    page = finance_client.get(response["Location"]).content.decode()
    assert ERASED in page and "Erased on" in page
    assert erased_email(history.user) in page and EMAIL not in page
    assert erase_url(history.account) not in page  # no second erasure offered


def test_a_wrong_email_is_said_on_the_form_and_changes_nothing(finance_client, history):
    before = unchanged_state(history.account)

    response = finance_client.post(erase_url(history.account), {"email": "someone@example.com", "reason": REASON})

    assert response.status_code == 200 and escape(EMAIL_MISMATCH) in response.content.decode()
    assert unchanged_state(history.account) == before


def test_a_refusal_is_said_before_anything_is_typed(finance_client, history, finance_user):
    erase(history, finance_user)

    text = finance_client.get(erase_url(history.account)).content.decode()

    assert "there is nothing left to erase" in text and "Erase the student" not in text


def test_stripe_out_of_reach_is_said_on_the_form(finance_client, history, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    response = finance_client.post(erase_url(history.account), {"email": EMAIL, "reason": REASON})

    assert response.status_code == 200 and "so nothing was erased" in response.content.decode()
    assert User.objects.get(pk=history.user.pk).erased_at is None


def test_support_may_not_erase(support_client, history):
    before = unchanged_state(history.account)

    assert support_client.get(erase_url(history.account)).status_code == 403
    assert support_client.post(erase_url(history.account), {"email": EMAIL, "reason": REASON}).status_code == 403
    assert unchanged_state(history.account) == before


def test_only_finance_is_offered_the_erasure(support_client, history):
    assert (
        erase_url(history.account)
        not in support_client.get(reverse("console:student", args=[history.account.pk])).content.decode()
    )
