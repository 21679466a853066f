"""The site's routes read from the URL resolver, so access tests cover every route there is,
including the next one someone adds."""

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from alerts.models import Notification
from billing import ledger, samples
from billing.disputes.holds import dispute_record
from billing.fraud.rules import fraud_flag_raise
from billing.models import Plan, Refund, WebhookEvent
from billing.subscriptions import subscribe_token_issue, subscription_start


@dataclass(frozen=True)
class Route:
    name: str  # "console:payment"
    view: object
    ids: tuple  # the names of the route's path arguments, e.g. ("payment_id",)

    def url(self, ids):
        """The route's URL with each path argument taken from `ids` ({"payment_id": 7, ...})."""
        return reverse(self.name, kwargs={name: ids[name] for name in self.ids})


def routes(namespace):
    """Every named route of a URL namespace ("console", "student"), by name."""
    found = []

    def walk(patterns, current):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, entry.namespace or current)
            elif isinstance(entry, URLPattern) and current == namespace and entry.name:
                ids = tuple(getattr(entry.pattern, "converters", {}))
                found.append(Route(f"{namespace}:{entry.name}", entry.callback, ids))

    walk(get_resolver().url_patterns, None)
    return sorted(found, key=lambda route: route.name)


def request(client, route, ids, method, **extra):
    return getattr(client, method.lower())(route.url(ids), **extra)


def accepted_method(client, route, ids):
    """GET if the route answers it (anything but 405), else POST: the method a route is used with."""
    return "POST" if request(client, route, ids, "GET").status_code == 405 else "GET"


def ids_of_every_kind(paid):
    """One real object behind every kind of id a console or student route takes, around the paid
    payment `paid` (its account also gets a live subscription, started at the stand-in Stripe with
    its card): {"payment_id": ..., "dispute_id": ..., "subscription_id": ..., ...}."""
    dispute = dispute_record(payment=paid, dispute_object=samples.dispute(paid), event_type="charge.dispute.created")
    event = WebhookEvent.objects.create(
        stripe_event_id=f"evt_routes_{paid.pk}", type="charge.refunded", payload={}, status=WebhookEvent.Status.FAILED
    )
    refund = Refund.objects.create(
        payment=paid,
        amount_cents=100,
        currency="EUR",
        status=Refund.Status.REQUESTED,
        idempotency_key=f"refund-routes-{paid.pk}",
    )
    alert = Notification.objects.create(
        recipient=paid.account.user,
        kind=Notification.Kind.PAYMENT_SUCCEEDED,
        dedupe_key=f"routes-{paid.pk}",
        title="Paid",
    )
    subscription = subscription_start(
        account=paid.account, token=subscribe_token_issue(account=paid.account, plan=_subscription_plan())
    )
    session = ledger.usage_record(
        account=paid.account, minutes=60, occurred_at=timezone.now(), tutor="Dr. Maria Keller", subject="Mathematics"
    )
    return {
        "subscription_id": subscription.pk,
        "payment_id": paid.pk,
        "refund_id": refund.pk,
        "receipt_id": paid.receipt.pk,
        "dispute_id": dispute.pk,
        "flag_id": fraud_flag_raise(payment=paid, warning_object=samples.early_fraud_warning(paid)).pk,
        "event_id": event.pk,
        "account_id": paid.account_id,
        "lot_id": paid.lot_id,
        "card_id": paid.payment_method_id,
        "notification_id": alert.pk,
        "usage_id": session.pk,
        "kind": "payments",  # an accounting export (billing.accounting.ExportKind)
    }


def _subscription_plan():
    return Plan.objects.create(
        name="Monthly 8 h",
        kind=Plan.Kind.SUBSCRIPTION,
        interval=Plan.Interval.MONTH,
        minutes=480,
        price_cents=12000,
    )
