"""The alert rules, the scans that apply them, and the emails.

Every rule names its subject and period in a dedupe key (one low-balance alert per top-up, one
"expiring in 7 days" per lot, one "payment failed" per payment...). Scans are set-based: a few
queries for all students, then one bulk insert that skips keys already present, so running a scan
twice, or two scans at once on PostgreSQL, creates each alert exactly once.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Max, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from alerts.models import EmailOptOut, Notification
from billing.formatting import hours_text, money_text
from billing.models import Account, LedgerEntry, Lot, Payment, PaymentMethod

logger = logging.getLogger(__name__)

Kind = Notification.Kind
# Most urgent first: the dashboard banner shows the first unread one in this order.
URGENCY = list(Kind.values)
RECENT_PAYMENTS = timedelta(days=2)
RECENT_EXPIRIES = timedelta(days=7)
EMAIL_ATTEMPTS = 5


def alerts_scan():
    """Every rule, for every student. Returns how many new notifications were created."""
    now = timezone.now()
    return sum(
        _create(candidates)
        for candidates in (
            _balance_alerts(now),
            _expiry_alerts(now),
            _expired_alerts(now),
            _card_alerts(now),
            _payment_alerts(now),
        )
    )


def balance_check(*, account):
    """The low-balance and depleted rules for one account, at once (after a session is recorded)."""
    return _create(_balance_alerts(timezone.now(), accounts=Account.objects.filter(pk=account.pk)))


def payment_notify(*, payment):
    """The payment rules for one payment, at once (after the student's click settled it)."""
    return _create(_payment_alerts(timezone.now(), payments=Payment.objects.filter(pk=payment.pk)))


def notification_mark_read(*, user, notification_id=None):
    """Mark one of the user's notifications read, or all of them. Returns how many changed."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if notification_id is not None:
        unread = unread.filter(pk=notification_id)
    return unread.update(read_at=timezone.now())


def emails_send_due(*, limit=200):
    """Email the notifications still to send, unless their student opted out of that kind.
    A failure is retried on the next run, a few times, and never stops the others."""
    due = Notification.objects.filter(email_status=Notification.Email.PENDING).select_related("recipient")
    sent = 0
    for notification in due.order_by("created_at")[:limit]:
        # Claim it first: two senders at once never email it twice.
        claimed = Notification.objects.filter(pk=notification.pk, email_status=Notification.Email.PENDING).update(
            email_status=Notification.Email.SENT, email_attempts=F("email_attempts") + 1
        )
        if not claimed:
            continue
        if EmailOptOut.objects.filter(user=notification.recipient, kind=notification.kind).exists():
            Notification.objects.filter(pk=notification.pk).update(email_status=Notification.Email.SKIPPED)
            continue
        try:
            _email(notification)
            sent += 1
        except Exception:
            logger.exception("Could not email notification %s", notification.pk)
            retry = notification.email_attempts + 1 < EMAIL_ATTEMPTS
            status = Notification.Email.PENDING if retry else Notification.Email.FAILED
            Notification.objects.filter(pk=notification.pk).update(email_status=status)
    return sent


def email_preferences_save(*, user, emailed_kinds):
    """Keep email on for `emailed_kinds` and off for every other kind."""
    EmailOptOut.objects.filter(user=user, kind__in=emailed_kinds).delete()
    EmailOptOut.objects.bulk_create(
        [EmailOptOut(user=user, kind=kind) for kind in Kind.values if kind not in emailed_kinds],
        ignore_conflicts=True,
    )


def _create(candidates):
    candidates = list(candidates)
    if not candidates:
        return 0
    keys = [candidate.dedupe_key for candidate in candidates]
    before = Notification.objects.filter(dedupe_key__in=keys).count()
    Notification.objects.bulk_create(candidates, ignore_conflicts=True)
    return Notification.objects.filter(dedupe_key__in=keys).count() - before


def _balance_alerts(now, accounts=None):
    usable = (
        Lot.objects.usable(now)
        .filter(account=OuterRef("pk"))
        .values("account")
        .annotate(total=Sum("minutes_remaining"))
        .values("total")
    )
    last_credit = (
        LedgerEntry.objects.filter(account=OuterRef("pk"), kind=LedgerEntry.Kind.CREDIT)
        .values("account")
        .annotate(last=Max("id"))
        .values("last")
    )
    low = (
        (accounts if accounts is not None else Account.objects.all())
        .annotate(available=Coalesce(Subquery(usable), 0), last_credit=Subquery(last_credit))
        .filter(last_credit__isnull=False, available__lt=F("low_balance_threshold_minutes"))
        .values_list("user_id", "pk", "available", "low_balance_threshold_minutes", "last_credit")
    )
    link = reverse("student:dashboard") + "#plans"
    for user_id, account_id, available, threshold, last_credit in low:
        if available == 0:
            yield Notification(
                recipient_id=user_id,
                kind=Kind.BALANCE_DEPLETED,
                dedupe_key=f"depleted:{account_id}:{last_credit}",
                title="You have no tutoring hours left",
                body="Your balance is 0 h. Top up to keep booking sessions.",
                link=link,
            )
        else:
            yield Notification(
                recipient_id=user_id,
                kind=Kind.LOW_BALANCE,
                dedupe_key=f"low:{account_id}:{last_credit}",
                title=f"Only {hours_text(available)} left",
                body=f"Your balance is {hours_text(available)}, below your reminder level of "
                f"{hours_text(threshold)}. Top up to keep your sessions going.",
                link=link,
            )


def _expiry_alerts(now):
    soon = Lot.objects.usable(now).filter(expires_at__lte=now + timedelta(days=7)).select_related("account")
    for lot in soon:
        within_a_day = lot.expires_at <= now + timedelta(days=1)
        when = timezone.localtime(lot.expires_at).strftime("%d %b %Y at %H:%M")
        yield Notification(
            recipient_id=lot.account.user_id,
            kind=Kind.LOT_EXPIRING_1D if within_a_day else Kind.LOT_EXPIRING_7D,
            dedupe_key=f"expiring-{'1d' if within_a_day else '7d'}:{lot.pk}",
            title=f"{hours_text(lot.minutes_remaining)} expire {'tomorrow' if within_a_day else 'within a week'}",
            body=f"{hours_text(lot.minutes_remaining)} of your {lot.name} package expire on {when}. "
            "Book a session to use them, or renew to add more.",
            link=reverse("student:lot_detail", args=[lot.pk]),
        )


def _expired_alerts(now):
    expired = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.EXPIRY, occurred_at__gte=now - RECENT_EXPIRIES
    ).select_related("account", "lot")
    for entry in expired:
        lost = hours_text(-entry.minutes)
        yield Notification(
            recipient_id=entry.account.user_id,
            kind=Kind.LOT_EXPIRED,
            dedupe_key=f"expired:{entry.lot_id}",
            title=f"{lost} expired unused",
            body=f"Your {entry.lot.name} package expired with {lost} unused.",
            link=reverse("student:lot_detail", args=[entry.lot_id]),
        )


def _card_alerts(now):
    today = timezone.localdate(now)
    next_month_year, next_month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    expiring = PaymentMethod.objects.active().filter(exp_year=next_month_year, exp_month=next_month)
    for card in expiring.select_related("account"):
        yield Notification(
            recipient_id=card.account.user_id,
            kind=Kind.CARD_EXPIRING,
            dedupe_key=f"card:{card.pk}:{card.exp_year}-{card.exp_month}",
            title=f"{card.label} expires at the end of next month",
            body=f"Your {card.label} expires {card.exp_month:02d}/{card.exp_year}. Add a new card so your "
            "renewals keep working.",
            link=reverse("student:cards"),
        )


def _payment_alerts(now, payments=None):
    recent = payments if payments is not None else Payment.objects.filter(updated_at__gte=now - RECENT_PAYMENTS)
    recent = recent.filter(
        status__in=[Payment.Status.FAILED, Payment.Status.REQUIRES_ACTION, Payment.Status.SUCCEEDED]
    ).select_related("account", "plan", "receipt")
    for payment in recent:
        what = f"{payment.plan.name} ({money_text(payment.amount_cents, payment.currency)})"
        if payment.status == Payment.Status.FAILED:
            yield Notification(
                recipient_id=payment.account.user_id,
                kind=Kind.PAYMENT_FAILED,
                dedupe_key=f"payment-failed:{payment.pk}",
                title="A payment failed",
                body=f"Your payment for {what} failed: {payment.failure_message} No hours were added.",
                link=reverse("student:dashboard") + "#plans",
            )
        elif payment.status == Payment.Status.REQUIRES_ACTION:
            yield Notification(
                recipient_id=payment.account.user_id,
                kind=Kind.PAYMENT_NEEDS_ACTION,
                dedupe_key=f"payment-action:{payment.pk}",
                title="Your bank asks you to confirm a payment",
                body=f"Your payment for {what} waits for your bank's check (3-D Secure). Open the link to finish it.",
                link=reverse("student:dashboard") + f"?resume={payment.pk}",
            )
        else:
            receipt = getattr(payment, "receipt", None)
            yield Notification(
                recipient_id=payment.account.user_id,
                kind=Kind.PAYMENT_SUCCEEDED,
                dedupe_key=f"payment-ok:{payment.pk}",
                title=f"{hours_text(payment.minutes)} added",
                body=f"Your payment for {what} went through and {hours_text(payment.minutes)} were added.",
                link=reverse("student:receipt_download", args=[receipt.pk]) if receipt else reverse("student:receipts"),
            )


def _email(notification):
    context = {"notification": notification, "base_url": settings.PORTAL_BASE_URL}
    message = EmailMultiAlternatives(
        subject=notification.title,
        body=render_to_string(f"email/alerts/{notification.kind}.txt", context),
        to=[notification.recipient.email],
    )
    message.attach_alternative(render_to_string(f"email/alerts/{notification.kind}.html", context), "text/html")
    message.send()
