"""The console's status badges: one tone per named status of each model (colour is never the only
signal: the badge says the status in words)."""

from django.utils.html import format_html

from billing.models import Dispute, FraudFlag, Payment, Refund, Subscription, WebhookEvent

OK, DANGER, WARN, MUTED = "ok", "danger", "warn", "muted"
TONES = {
    Payment: {
        Payment.Status.SUCCEEDED: OK,
        Payment.Status.FAILED: DANGER,
        Payment.Status.PROCESSING: WARN,
        Payment.Status.REQUIRES_ACTION: WARN,
        Payment.Status.NEEDS_REVIEW: DANGER,
        Payment.Status.RESOLVED: MUTED,
    },
    Refund: {
        Refund.Status.SUCCEEDED: OK,
        Refund.Status.FAILED: DANGER,
        Refund.Status.REQUESTED: WARN,
        Refund.Status.REQUIRES_ACTION: WARN,
    },
    Dispute: {
        Dispute.Status.WON: OK,
        Dispute.Status.LOST: DANGER,
        Dispute.Status.NEEDS_RESPONSE: WARN,
        Dispute.Status.WARNING_NEEDS_RESPONSE: WARN,
    },
    FraudFlag: {
        FraudFlag.Status.CLEARED: OK,
        FraudFlag.Status.CONFIRMED: DANGER,
        FraudFlag.Status.OPEN: WARN,
    },
    Subscription: {
        Subscription.Status.ACTIVE: OK,
        Subscription.Status.TRIALING: OK,
        Subscription.Status.PAST_DUE: DANGER,
        Subscription.Status.UNPAID: DANGER,
        Subscription.Status.STARTING: WARN,
        Subscription.Status.INCOMPLETE: WARN,
        Subscription.Status.PAUSED: WARN,
    },
    WebhookEvent: {
        WebhookEvent.Status.PROCESSED: OK,
        WebhookEvent.Status.FAILED: DANGER,
        WebhookEvent.Status.ORPHAN: DANGER,
        WebhookEvent.Status.WAITING: WARN,
    },
}


def badge(tone, label):
    return format_html('<span class="badge badge-{}">{}</span>', tone, label)


def status_badge(record):
    """A payment's, refund's, dispute's, flag's, event's or subscription's status as a badge, in words."""
    if isinstance(record, Subscription):
        return subscription_badge(record)
    return badge(TONES[type(record)].get(record.status, MUTED), record.get_status_display())


def subscription_badge(subscription):
    """A subscription's status as staff and the student read it (`display_status`): one that will not
    renew says "Cancels at period end", as a warning."""
    if subscription.display_status != subscription.get_status_display():
        return badge(WARN, subscription.display_status)
    return badge(TONES[Subscription].get(subscription.status, MUTED), subscription.display_status)
