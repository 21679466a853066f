"""Stripe's answers that localstripe cannot give about a subscription, faked at the HTTP boundary in
Stripe's real shapes (billing.samples): a change of plan (localstripe answers a price change with a
500) and an unpaid renewal paid with "pay now" (localstripe has no renewals). Everything else is
forwarded to the real localstripe."""

import copy
import secrets
import time
from urllib.parse import parse_qs

import requests

from billing import samples
from billing.tests.localstripe import SECRET_KEY
from billing.tests.network import LossyProxy


def _load(subscription):
    """The proxy answers from its own thread, which cannot read the test's database: what the
    samples read of the subscription (its account and plan) is loaded first."""
    assert subscription.account.stripe_customer_id and subscription.plan.pk and subscription.stripe_item_id


def _forward(localstripe, method, path, body=b""):
    answer = requests.request(
        method,
        f"{localstripe.url}{path}",
        data=body,
        auth=(SECRET_KEY, ""),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    return answer.status_code, answer.json()


def plan_change_proxy(localstripe, subscription, new_plan):
    """A proxy in front of localstripe that answers a price change of `subscription` as Stripe does:
    the subscription on `new_plan`'s price and, for an upgrade (always_invoice), a paid proration
    invoice with one negative line for the unused time on the old price and one positive line for
    the rest of the period on the new one. Point STRIPE_API_BASE at `proxy.url`."""
    _load(subscription)
    subscription_path = f"/v1/subscriptions/{subscription.stripe_subscription_id}"
    invoice_id = f"in_upgrade_{secrets.token_hex(8)}"
    old_plan = subscription.plan
    start = int(subscription.current_period_start.timestamp())
    end = int(subscription.current_period_end.timestamp())
    changed = {}

    def subscription_update(body):
        form = parse_qs(body.decode())
        price = form.get("items[0][price]") or form.get("items[0][plan]")
        if not price:  # cancel at period end, resume: localstripe does those
            return _forward(localstripe, "POST", subscription_path, body)
        remote = samples.subscription(subscription, price_id=price[0])
        if form.get("proration_behavior") == ["always_invoice"]:
            remote["latest_invoice"] = invoice_id
        changed.update(price=price[0], remote=remote)
        return 200, remote

    def subscription_read(body):
        return (200, changed["remote"]) if changed else _forward(localstripe, "GET", subscription_path)

    def proration_invoice(body):
        now = int(time.time())
        share = (end - now) / (end - start)
        taken = -round(old_plan.price_cents * share)
        added = round(new_plan.price_cents * share)
        lines = [
            samples.invoice_line(
                subscription,
                amount_cents=taken,
                period=(now, end),
                price_id=old_plan.stripe_price_id,
                proration=True,
                description=f"Unused time on {old_plan.name}",
            ),
            samples.invoice_line(
                subscription,
                amount_cents=added,
                period=(now, end),
                price_id=changed["price"],
                proration=True,
                description=f"Remaining time on {new_plan.name}",
            ),
        ]
        invoice = samples.invoice(
            subscription,
            status="paid",
            amount_cents=added + taken,
            billing_reason="subscription_update",
            invoice_id=invoice_id,
            lines=lines,
            period=(now, end),
        )
        return 200, invoice

    return LossyProxy(
        localstripe.url,
        canned={
            rf"^POST {subscription_path}$": subscription_update,
            rf"^GET {subscription_path}(\?|$)": subscription_read,
            rf"^GET /v1/invoices/{invoice_id}(\?|$)": proration_invoice,
        },
    )


def renewal_paid_proxy(localstripe, subscription, invoice):
    """A proxy that answers "pay now" on the unpaid renewal `invoice` (a samples.invoice dict) as
    Stripe does once the card is charged: the invoice paid."""
    paid = copy.deepcopy(invoice) | {
        "status": "paid",
        "amount_paid": invoice["amount_due"],
        "amount_remaining": 0,
        "next_payment_attempt": None,
    }
    paid["payments"]["data"][0] |= {"status": "paid", "amount_paid": invoice["amount_due"]}
    return LossyProxy(
        localstripe.url,
        canned={
            rf"^POST /v1/invoices/{invoice['id']}/pay$": (200, paid),
            rf"^GET /v1/invoices/{invoice['id']}(\?|$)": (200, paid),
        },
    )
