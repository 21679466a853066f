"""The alert rules, the scans that apply them, and the emails.

Every rule names its subject and period in a dedupe key (one low-balance alert per refill, one
"expiring in 7 days" per lot, one "payment failed" per payment...). Scans are set-based: each rule
is one query that already leaves out subjects alerted before (an anti-join on the key), then one
bulk insert that skips any key a concurrent scan inserted meanwhile, so running a scan twice, or
two at once on PostgreSQL, creates each alert exactly once. A scan also resolves alerts whose
condition has ended, so the bell and the banner only show what still matters.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import CharField, Exists, F, Max, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Cast, Coalesce, Concat
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from alerts.models import STUDENT_KINDS, EmailOptOut, Notification
from billing import ledger
from billing.audit import audit_record
from billing.formatting import datetime_text, hours_text, money_text
from billing.models import Account, LedgerEntry, Lot, Payment, PaymentMethod, Subscription
from billing.payments import PAYMENT_UNDER_REVIEW

logger = logging.getLogger(__name__)

Kind = Notification.Kind
Email = Notification.Email
# Most urgent first: the dashboard banner shows the first open one in this order.
URGENCY = list(Kind.values)
RECENT_PAYMENTS = timedelta(days=2)
RECENT_EXPIRIES = timedelta(days=7)
# A subscription's renewal reminder: this long before the period ends (with the amount and card).
RENEWAL_NOTICE = timedelta(days=3)
RECENT_SUBSCRIPTION_ENDS = timedelta(days=7)
# A student still on the page completes 3-D Secure within minutes; only then is it worth an alert.
ACTION_ALERT_AFTER = timedelta(minutes=15)
EMAIL_ATTEMPTS = 6
EMAIL_CLAIM_TIMEOUT = timedelta(minutes=10)
EMAIL_BATCH = 500


def alerts_scan():
    """Resolve what is over, then apply every rule to every student. Returns how many alerts were new."""
    now = timezone.now()
    _resolve_finished(now)
    return sum(
        _create(candidates)
        for candidates in (
            _balance_alerts(now),
            _expiry_alerts(now),
            _expired_alerts(now),
            _card_alerts(now),
            _payment_alerts(now),
            _subscription_alerts(now),
        )
    )


def balance_check(*, account):
    """The low-balance and depleted rules for one account, at once."""
    return _create(_balance_alerts(timezone.now(), accounts=Account.objects.filter(pk=account.pk)))


def session_record(*, account, minutes, occurred_at, tutor, subject, recorded_by=None, ip_address=None):
    """Record a tutoring session and, once it is committed, raise a balance alert if one is due.
    What the staff console's form calls (audited with the staff member); an alert that fails is
    logged and left to the next scan."""
    with transaction.atomic():
        usage = ledger.usage_record(
            account=account,
            minutes=minutes,
            occurred_at=occurred_at,
            tutor=tutor,
            subject=subject,
            recorded_by=recorded_by,
        )
        if recorded_by is not None:
            audit_record(
                actor=recorded_by,
                action="session.record",
                target=usage,
                after={"minutes": minutes, "occurred_at": occurred_at.isoformat(), "tutor": tutor, "subject": subject},
                ip_address=ip_address,
            )
    transaction.on_commit(lambda: _quietly(balance_check, account=account))
    return usage


def payment_notify(*, payment):
    """The payment rules for one payment that just settled (failed, succeeded or left for staff), at once."""
    if payment.status not in (Payment.Status.FAILED, Payment.Status.SUCCEEDED, Payment.Status.NEEDS_REVIEW):
        return 0
    return _quietly(_create, _payment_alerts(timezone.now(), payments=Payment.objects.filter(pk=payment.pk))) or 0


def notification_mark_read(*, user, notification_id=None):
    """Mark one of the user's notifications read, or all of them. Returns how many changed."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if notification_id is not None:
        unread = unread.filter(pk=notification_id)
    return unread.update(read_at=timezone.now())


def emails_send_due(*, limit=EMAIL_BATCH):
    """Email the notifications due, over one mail connection, unless their student opted out of
    that kind. Each is claimed before sending and marked sent only after; a failure waits longer
    each time (2, 4, 8... minutes) and never stops the others."""
    now = timezone.now()
    due = Notification.objects.filter(
        Q(email_status=Email.PENDING, email_next_attempt_at__isnull=True)
        | Q(email_status=Email.PENDING, email_next_attempt_at__lte=now)
        | Q(email_status=Email.SENDING, email_claimed_at__lte=now - EMAIL_CLAIM_TIMEOUT)
    )
    batch = list(due.select_related("recipient").order_by("created_at")[:limit])
    opted_out = set(EmailOptOut.objects.filter(user__in={n.recipient_id for n in batch}).values_list("user_id", "kind"))
    sent = 0
    connection = get_connection()  # opened by the first send, so a dead server fails per email
    try:
        for notification in batch:
            if (notification.recipient_id, notification.kind) in opted_out:
                Notification.objects.filter(pk=notification.pk).update(email_status=Email.SKIPPED)
            elif _claim(notification, now):
                sent += _send(notification, connection)
    finally:
        connection.close()
    return sent


def email_preferences_save(*, user, emailed_kinds, offered_kinds=STUDENT_KINDS):
    """Of the kinds offered (a student's, or staff's), keep email on for `emailed_kinds` and off for
    the others."""
    EmailOptOut.objects.filter(user=user, kind__in=emailed_kinds).delete()
    EmailOptOut.objects.bulk_create(
        [EmailOptOut(user=user, kind=kind) for kind in offered_kinds if kind not in emailed_kinds],
        ignore_conflicts=True,
    )


def _quietly(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except Exception:
        logger.exception("Could not raise an alert now; the next scan does.")
        return None


def _create(candidates):
    candidates = list(candidates)
    Notification.objects.bulk_create(candidates, ignore_conflicts=True)
    return len(candidates)


def _not_alerted(queryset, *parts):
    """`queryset` without the rows whose alert key (text and `_as_text` fields) already exists."""
    pieces = [part if hasattr(part, "resolve_expression") else Value(part) for part in parts]
    key = Concat(*pieces, output_field=CharField())
    return queryset.annotate(alerted=Exists(Notification.objects.filter(dedupe_key=key))).filter(alerted=False)


def _as_text(field):
    """A field of the scanned row, as text, inside the key's subquery."""
    return Cast(OuterRef(field), output_field=CharField())


def _resolve_finished(now):
    unresolved = Notification.objects.filter(resolved_at__isnull=True)
    open_lots = Lot.objects.usable(now).values("pk")
    unresolved.filter(kind__in=[Kind.LOT_EXPIRING_7D, Kind.LOT_EXPIRING_1D]).exclude(subject_id__in=open_lots).update(
        resolved_at=now
    )
    waiting = _completable(Payment.objects.all()).values("pk")
    unresolved.filter(kind=Kind.PAYMENT_NEEDS_ACTION).exclude(subject_id__in=waiting).update(resolved_at=now)
    in_review = Payment.objects.filter(status=Payment.Status.NEEDS_REVIEW).values("pk")
    unresolved.filter(kind=Kind.PAYMENT_UNDER_REVIEW).exclude(subject_id__in=in_review).update(resolved_at=now)
    # A failed payment is over once the student has paid since.
    later_success = Payment.objects.filter(
        account__user=OuterRef("recipient"), status=Payment.Status.SUCCEEDED, settled_at__gt=OuterRef("created_at")
    )
    unresolved.filter(kind=Kind.PAYMENT_FAILED).filter(Exists(later_success)).update(resolved_at=now)
    # Dunning is over once the subscription is no longer owed a payment (paid, or ended).
    overdue = Subscription.objects.filter(status__in=Subscription.OVERDUE).values("pk")
    unresolved.filter(kind=Kind.SUBSCRIPTION_PAST_DUE).exclude(subject_id__in=overdue).update(resolved_at=now)
    renewing = Subscription.objects.filter(
        status__in=Subscription.RUNNING, cancel_at_period_end=False, current_period_end__gt=now
    ).values("pk")
    unresolved.filter(kind=Kind.SUBSCRIPTION_RENEWING).exclude(subject_id__in=renewing).update(resolved_at=now)
    # Balance alerts are over once the balance is back at or above the reminder level.
    healthy = (
        _with_available(Account.objects.all(), now)
        .filter(available__gte=F("low_balance_threshold_minutes"))
        .values("pk")
    )
    unresolved.filter(kind__in=[Kind.LOW_BALANCE, Kind.BALANCE_DEPLETED], subject_id__in=healthy).update(
        resolved_at=now
    )


def _with_available(accounts, now):
    usable = (
        Lot.objects.usable(now)
        .filter(account=OuterRef("pk"))
        .values("account")
        .annotate(total=Sum("minutes_remaining"))
        .values("total")
    )
    return accounts.annotate(available=Coalesce(Subquery(usable), 0))


def _balance_alerts(now, accounts=None):
    # A period starts with every refill (purchase, staff adjustment, released hold).
    last_refill = (
        LedgerEntry.objects.filter(account=OuterRef("pk"), minutes__gt=0)
        .values("account")
        .annotate(last=Max("id"))
        .values("last")
    )
    low = (
        _with_available(accounts if accounts is not None else Account.objects.all(), now)
        .annotate(last_refill=Subquery(last_refill))
        .filter(last_refill__isnull=False, available__lt=F("low_balance_threshold_minutes"))
    )
    depleted = _not_alerted(low.filter(available=0), "depleted:", _as_text("pk"), ":", _as_text("last_refill"))
    running_low = _not_alerted(low.filter(available__gt=0), "low:", _as_text("pk"), ":", _as_text("last_refill"))
    link = reverse("student:dashboard") + "#plans"
    for user_id, account_id, last_refill_id in depleted.values_list("user_id", "pk", "last_refill"):
        yield Notification(
            recipient_id=user_id,
            kind=Kind.BALANCE_DEPLETED,
            subject_id=account_id,
            dedupe_key=f"depleted:{account_id}:{last_refill_id}",
            title="You have no tutoring hours left",
            body="Your balance is 0 h. Top up to keep booking sessions.",
            link=link,
        )
    fields = ("user_id", "pk", "available", "low_balance_threshold_minutes", "last_refill")
    for user_id, account_id, available, threshold, last_refill_id in running_low.values_list(*fields):
        yield Notification(
            recipient_id=user_id,
            kind=Kind.LOW_BALANCE,
            subject_id=account_id,
            dedupe_key=f"low:{account_id}:{last_refill_id}",
            title=f"Only {hours_text(available)} left",
            body=f"Your balance is {hours_text(available)}, below your reminder level of "
            f"{hours_text(threshold)}. Top up to keep your sessions going.",
            link=link,
        )


def _expiry_alerts(now):
    usable = Lot.objects.usable(now)
    within_a_day = _not_alerted(usable.filter(expires_at__lte=now + timedelta(days=1)), "expiring-1d:", _as_text("pk"))
    within_a_week = _not_alerted(
        usable.filter(expires_at__gt=now + timedelta(days=1), expires_at__lte=now + timedelta(days=7)),
        "expiring-7d:",
        _as_text("pk"),
    )
    for lots, soon in ((within_a_day, True), (within_a_week, False)):
        for lot_id, user_id, name, remaining, expires_at in lots.values_list(
            "pk", "account__user_id", "name", "minutes_remaining", "expires_at"
        ):
            when = datetime_text(expires_at)
            yield Notification(
                recipient_id=user_id,
                kind=Kind.LOT_EXPIRING_1D if soon else Kind.LOT_EXPIRING_7D,
                subject_id=lot_id,
                dedupe_key=f"expiring-{'1d' if soon else '7d'}:{lot_id}",
                title=f"{hours_text(remaining)} expire {'tomorrow' if soon else 'within a week'}",
                body=f"{hours_text(remaining)} of your {name} package expire on {when}. "
                "Book a session to use them, or renew to add more.",
                link=reverse("student:lot_detail", args=[lot_id]),
            )


def _expired_alerts(now):
    # By when the expiry was booked (not when the lot expired), so a late booking still alerts.
    expired = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.EXPIRY, lot__expired_at__gte=now - RECENT_EXPIRIES)
    expired = _not_alerted(expired, "expired:", _as_text("lot_id"))
    for lot_id, user_id, name, minutes in expired.values_list("lot_id", "account__user_id", "lot__name", "minutes"):
        lost = hours_text(-minutes)
        yield Notification(
            recipient_id=user_id,
            kind=Kind.LOT_EXPIRED,
            subject_id=lot_id,
            dedupe_key=f"expired:{lot_id}",
            title=f"{lost} expired unused",
            body=f"Your {name} package expired with {lost} unused.",
            link=reverse("student:lot_detail", args=[lot_id]),
        )


def _card_alerts(now):
    today = timezone.localdate(now)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    expiring = PaymentMethod.objects.active().filter(exp_year=year, exp_month=month)
    expiring = _not_alerted(expiring, "card:", _as_text("pk"), f":{year}-{month}")
    for card in expiring.select_related("account"):
        yield Notification(
            recipient_id=card.account.user_id,
            kind=Kind.CARD_EXPIRING,
            subject_id=card.pk,
            dedupe_key=f"card:{card.pk}:{year}-{month}",
            title=f"{card.label} expires at the end of next month",
            body=f"Your {card.label} expires {card.exp_month:02d}/{card.exp_year}. Add a new card so your "
            "renewals keep working.",
            link=reverse("student:cards"),
        )


def _payment_alerts(now, payments=None):
    recent = payments if payments is not None else Payment.objects.filter(updated_at__gte=now - RECENT_PAYMENTS)
    # A payment cancelled because the student started another one is no news to them.
    # A subscription's failed renewal is told by the past-due alert, with its "pay now".
    failed = _not_alerted(
        recent.filter(status=Payment.Status.FAILED, subscription__isnull=True).exclude(
            failure_code=Payment.Failure.CANCELED
        ),
        "payment-failed:",
        _as_text("pk"),
    )
    waiting = _not_alerted(
        _completable(recent).filter(updated_at__lte=now - ACTION_ALERT_AFTER),
        "payment-action:",
        _as_text("pk"),
    )
    succeeded = _not_alerted(recent.filter(status=Payment.Status.SUCCEEDED), "payment-ok:", _as_text("pk"))
    in_review = _not_alerted(recent.filter(status=Payment.Status.NEEDS_REVIEW), "payment-review:", _as_text("pk"))
    for payment in failed.select_related("account", "plan"):
        yield Notification(
            recipient_id=payment.account.user_id,
            kind=Kind.PAYMENT_FAILED,
            subject_id=payment.pk,
            dedupe_key=f"payment-failed:{payment.pk}",
            title="A payment failed",
            body=f"Your payment for {_what(payment)} failed: {payment.failure_message} No hours were added.",
            link=reverse("student:dashboard") + "#plans",
        )
    for payment in waiting.select_related("account", "plan"):
        yield Notification(
            recipient_id=payment.account.user_id,
            kind=Kind.PAYMENT_NEEDS_ACTION,
            subject_id=payment.pk,
            dedupe_key=f"payment-action:{payment.pk}",
            title="Your bank asks you to confirm a payment",
            body=f"Your payment for {_what(payment)} waits for your bank's check (3-D Secure). "
            "Open the link to finish it.",
            link=_completion_link(payment),
        )
    for payment in in_review.select_related("account", "plan"):
        # Found by a pay click, a refresh or a webhook: the student may have left the page. In our
        # words only (our price, never Stripe's amount or ids): staff explain the rest.
        yield Notification(
            recipient_id=payment.account.user_id,
            kind=Kind.PAYMENT_UNDER_REVIEW,
            subject_id=payment.pk,
            dedupe_key=f"payment-review:{payment.pk}",
            title="A payment is under review",
            body=f"Your payment for {_what(payment)} is under review. {PAYMENT_UNDER_REVIEW}",
            link=reverse("student:dashboard"),
        )
    for payment in succeeded.select_related("account", "plan", "receipt"):
        receipt = getattr(payment, "receipt", None)
        yield Notification(
            recipient_id=payment.account.user_id,
            kind=Kind.PAYMENT_SUCCEEDED,
            subject_id=payment.pk,
            dedupe_key=f"payment-ok:{payment.pk}",
            title=f"{hours_text(payment.minutes)} added",
            body=f"Your payment for {_what(payment)} went through and {hours_text(payment.minutes)} were added.",
            link=reverse("student:receipt_download", args=[receipt.pk]) if receipt else reverse("student:receipts"),
        )


def _completion_link(payment):
    if payment.for_subscription:
        return reverse("student:subscription") + f"?resume={payment.pk}"
    return reverse("student:dashboard") + f"?resume={payment.pk}"


def _subscription_alerts(now):
    """Dunning (a renewal failed: one alert per unpaid invoice, with the reason and "pay now"), the
    renewal reminder (three days before a period ends, once per period) and the end."""
    page = reverse("student:subscription")
    overdue = Payment.objects.filter(
        subscription__status__in=Subscription.OVERDUE, status=Payment.Status.FAILED, subscription__isnull=False
    )
    for payment in _not_alerted(overdue, "subscription-past-due:", _as_text("pk")).select_related(
        "account", "plan", "subscription"
    ):
        reason = payment.subscription.failure_message or payment.failure_message
        yield Notification(
            recipient_id=payment.account.user_id,
            kind=Kind.SUBSCRIPTION_PAST_DUE,
            subject_id=payment.subscription_id,
            dedupe_key=f"subscription-past-due:{payment.pk}",
            title="Your subscription payment failed",
            body=f"We could not charge {_what(payment)} for your subscription: {reason} Pay now with a saved card "
            "to keep your hours coming; your bank may try again on its own in a few days.",
            link=page,
        )
    renewing = Subscription.objects.filter(
        status__in=Subscription.RUNNING,
        cancel_at_period_end=False,
        current_period_end__gt=now,
        current_period_end__lte=now + RENEWAL_NOTICE,
    )
    # One reminder per period: its key names the period's end, which a text cast would spell
    # differently per database, so the anti-join looks for a reminder since the period began.
    reminded = Notification.objects.filter(
        kind=Kind.SUBSCRIPTION_RENEWING, subject_id=OuterRef("pk"), created_at__gte=OuterRef("current_period_start")
    )
    for subscription in renewing.exclude(Exists(reminded)).select_related("account", "plan"):
        plan = subscription.plan
        card = subscription.account.payment_methods.active().filter(is_default=True).first()
        yield Notification(
            recipient_id=subscription.account.user_id,
            kind=Kind.SUBSCRIPTION_RENEWING,
            subject_id=subscription.pk,
            dedupe_key=f"subscription-renewal:{subscription.pk}:{int(subscription.current_period_end.timestamp())}",
            title=f"{plan.name} renews on {datetime_text(subscription.current_period_end)}",
            body=f"Your subscription renews on {datetime_text(subscription.current_period_end)}: we will charge "
            f"{money_text(plan.price_cents, plan.currency)} to {card.label if card else 'your default card'} "
            f"and add {hours_text(plan.minutes)}.",
            link=page,
        )
    ended = Subscription.objects.filter(
        status=Subscription.Status.CANCELED, ended_at__gte=now - RECENT_SUBSCRIPTION_ENDS
    )
    for subscription in _not_alerted(ended, "subscription-ended:", _as_text("pk")).select_related("account", "plan"):
        yield Notification(
            recipient_id=subscription.account.user_id,
            kind=Kind.SUBSCRIPTION_ENDED,
            subject_id=subscription.pk,
            dedupe_key=f"subscription-ended:{subscription.pk}",
            title=f"Your {subscription.plan.name} subscription has ended",
            body="No more hours will be added or charged. Hours you already have stay until they expire.",
            link=page,
        )


def _completable(payments):
    """The payments waiting for 3-D Secure that the student may still complete: a blocked account is
    refused the check (and its payments are being cancelled), so an alert would lead nowhere."""
    return payments.filter(status=Payment.Status.REQUIRES_ACTION, account__blocked_at__isnull=True)


def _what(payment):
    return f"{payment.plan.name} ({money_text(payment.amount_cents, payment.currency)})"


def _claim(notification, now):
    claimable = Q(email_status=Email.PENDING) | Q(
        email_status=Email.SENDING, email_claimed_at__lte=now - EMAIL_CLAIM_TIMEOUT
    )
    return Notification.objects.filter(claimable, pk=notification.pk).update(
        email_status=Email.SENDING, email_claimed_at=now, email_attempts=F("email_attempts") + 1
    )


def _send(notification, connection):
    try:
        _email(notification, connection)
    except Exception:
        logger.exception("Could not email notification %s", notification.pk)
        attempts = notification.email_attempts + 1
        retry_at = timezone.now() + timedelta(minutes=2**attempts)
        status = Email.PENDING if attempts < EMAIL_ATTEMPTS else Email.FAILED
        Notification.objects.filter(pk=notification.pk).update(email_status=status, email_next_attempt_at=retry_at)
        return 0
    Notification.objects.filter(pk=notification.pk).update(email_status=Email.SENT)
    return 1


def _email(notification, connection):
    context = {"notification": notification, "base_url": settings.PORTAL_BASE_URL}
    message = EmailMultiAlternatives(
        subject=notification.title,
        body=render_to_string(f"email/alerts/{notification.kind}.txt", context),
        to=[notification.recipient.email],
        connection=connection,
    )
    message.attach_alternative(render_to_string(f"email/alerts/{notification.kind}.html", context), "text/html")
    message.send()
