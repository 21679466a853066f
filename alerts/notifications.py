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
from django.db.models import CharField, Exists, F, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from alerts.models import STUDENT_KINDS, EmailOptOut, Notification
from alerts.texts import moment, written_text
from billing import ledger
from billing.audit import action_key_claim, audit_reason, audit_record
from billing.formatting import datetime_text, reader_locale
from billing.models import (
    Account,
    AutoTopUp,
    AutoTopUpEvent,
    Dispute,
    LedgerEntry,
    Lot,
    Payment,
    PaymentMethod,
    Refund,
    Subscription,
)
from billing.payments import FailedPaymentRefused, payment_again_refusal
from billing.selectors import with_available_minutes
from billing.topups import NOT_A_DECLINE, monthly_limit

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
# Finance may ask a student to pay again for the same payment once a day, not more.
PAY_AGAIN_RESEND_AFTER = timedelta(hours=24)
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
            _refund_alerts(now),
            _dispute_alerts(now),
            _auto_top_up_alerts(now),
        )
    )


def auto_top_up_notify(*, account_ids=None):
    """The alerts of automatic top-up at once, after its check (of `account_ids`) or scan ran: its
    recent payments' (topped up, declined, waiting for the bank) and its pauses."""
    now = timezone.now()
    recent = Payment.objects.filter(kind=Payment.Kind.AUTO_TOP_UP, updated_at__gte=now - RECENT_PAYMENTS)
    if account_ids is not None:
        if not AutoTopUp.objects.filter(account_id__in=account_ids).exists():
            return 0  # the usual case: a balance fell on an account without automatic top-up
        recent = recent.filter(account_id__in=account_ids)
    return (_quietly(_create, _payment_alerts(now, payments=recent)) or 0) + (
        _quietly(_create, _auto_top_up_alerts(now)) or 0
    )


def balance_check(*, account):
    """The low-balance and depleted rules for one account, at once."""
    return _create(_balance_alerts(timezone.now(), accounts=Account.objects.filter(pk=account.pk)))


def session_record(*, account, minutes, occurred_at, tutor, subject, recorded_by=None, ip_address=None, key=None):
    """Record a tutoring session and, once it is committed, raise a balance alert if one is due.
    What the staff console's form calls (audited with the staff member); an alert that fails is
    logged and left to the next scan. With the form's one-time `key`, a second submit of the same
    form records nothing and raises ActionAlreadyTaken."""
    with transaction.atomic():
        if key is not None:
            ledger.account_lock(account_id=account.pk)
            action_key_claim(key=key, action="session.record", actor=recorded_by)
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
    """The payment rules for one payment that just settled (failed, succeeded or left for staff), or
    Finance's retry that waits for 3-D Secure, at once."""
    if payment.status not in (
        Payment.Status.FAILED,
        Payment.Status.SUCCEEDED,
        Payment.Status.NEEDS_REVIEW,
        Payment.Status.REQUIRES_ACTION,
    ):
        return 0
    return _quietly(_create, _payment_alerts(timezone.now(), payments=Payment.objects.filter(pk=payment.pk))) or 0


def pay_again_send(*, payment, actor, reason, ip_address=None):
    """Finance asks the student to pay again for a failed package payment: an alert (emailed, per
    their preferences) whose link opens that package's pay button on the dashboard. Once a day at
    most per payment (sooner is refused, saying when the last one went): a new one replaces the
    earlier in the bell. Audited. Raises FailedPaymentRefused when payments.payment_again_refusal
    says why not (not failed, a subscription's, no longer on sale, blocked, paid since)."""
    reason = audit_reason(reason, _("Say why the student is asked to pay again; it is kept in the audit log."))
    now = timezone.now()
    with transaction.atomic():
        ledger.account_lock(account_id=payment.account_id)  # two sends at once: the later one sees the first
        payment = Payment.objects.select_related("account", "plan").get(pk=payment.pk)
        if refusal := payment_again_refusal(payment=payment):
            raise FailedPaymentRefused(refusal)
        earlier = Notification.objects.filter(kind=Kind.PAY_AGAIN, subject_id=payment.pk)
        last = earlier.order_by("-created_at").first()
        if last is not None and now - last.created_at < PAY_AGAIN_RESEND_AFTER:
            raise FailedPaymentRefused(
                _("The student was already asked to pay again on %(sent)s; you can ask again from %(again)s.")
                % {
                    "sent": datetime_text(last.created_at),
                    "again": datetime_text(last.created_at + PAY_AGAIN_RESEND_AFTER),
                }
            )
        earlier.filter(resolved_at__isnull=True).update(resolved_at=now)
        notification = notification_build(
            recipient_id=payment.account.user_id,
            kind=Kind.PAY_AGAIN,
            subject_id=payment.pk,
            dedupe_key=f"pay-again:{payment.pk}:{int(now.timestamp())}",
            params=_paid(payment) | {"paid_at": moment(payment.created_at), "reason": payment.failure_message},
            link=reverse("student:dashboard") + f"?again={payment.pk}",
        )
        notification.save()
        audit_record(
            actor=actor,
            action="payment.pay_again",
            target=payment,
            reason=reason,
            after={"notification_id": notification.pk},
            ip_address=ip_address,
        )
    return notification


def refund_notify(*, refund):
    """The refund rule for one refund just made (in the console), at once."""
    return _quietly(_create, _refund_alerts(timezone.now(), refunds=Refund.objects.filter(pk=refund.pk))) or 0


def notification_mark_read(*, user, notification_id=None, kinds=STUDENT_KINDS):
    """Mark one of the user's notifications of `kinds` read (the ones the page shows: a student's,
    or the console's staff kinds), or all of them. Returns how many changed."""
    unread = Notification.objects.filter(recipient=user, kind__in=kinds, read_at__isnull=True)
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


def notification_build(*, kind, params, **fields):
    """A new alert of `kind` about `params` (read in each reader's language: alerts.texts), its text
    also stored as written in the site's default language."""
    title, body = written_text(kind, params)
    return Notification(kind=kind, params=params, stored_title=title, stored_body=body, **fields)


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


def _key(*parts):
    """An alert key computed in the database from text and F() fields of the row (as text)."""
    pieces = [Value(part) if isinstance(part, str) else Cast(part, output_field=CharField()) for part in parts]
    return Concat(*pieces, output_field=CharField())


def _expiry_key(prefix, lot=""):
    """The key of an alert about one expiry of a lot (`lot`: the path to the lot, "" for the row
    itself): the lot and its expiry date, so that a lot whose expiry moved (extended, reopened) is
    alerted again about its new date. Computed in the database and read back (`alert_key`), so the
    scan's anti-join and the alert it writes always agree on the text of the date."""
    return _key(prefix, F(f"{lot}pk"), ":", F(f"{lot}expires_at"))


def _not_alerted_by_key(queryset, key):
    """`queryset` annotated with each row's `alert_key`, without the rows whose alert exists already."""
    alerted = Notification.objects.filter(dedupe_key=OuterRef("alert_key"))
    return queryset.annotate(alert_key=key).exclude(Exists(alerted))


EXPIRING_1D, EXPIRING_7D, EXPIRED = "expiring-1d:", "expiring-7d:", "expired:"


def lot_alerts_refresh(*, lot_ids):
    """Resolve the expiry alerts of these lots that no longer speak of their current expiry (run once
    staff moved their expiry, so the bell stops warning at once rather than at the next scan)."""
    _resolve_lot_alerts(timezone.now(), Notification.objects.filter(resolved_at__isnull=True, subject_id__in=lot_ids))


def _resolve_lot_alerts(now, unresolved):
    """An expiry alert is over once it no longer speaks of its lot's current expiry: the lot was used
    up or expired (an "expiring" alert), reopened (an "expired" one), or its expiry moved."""
    usable, expired = Lot.objects.usable(now), Lot.objects.filter(expired_at__isnull=False)
    over = Q()
    for kind, prefix, lots in (
        (Kind.LOT_EXPIRING_7D, EXPIRING_7D, usable),
        (Kind.LOT_EXPIRING_1D, EXPIRING_1D, usable),
        (Kind.LOT_EXPIRED, EXPIRED, expired),
    ):
        current = (
            lots.filter(pk=OuterRef("subject_id"))
            .annotate(alert_key=_expiry_key(prefix))
            .filter(alert_key=OuterRef("dedupe_key"))
        )
        over |= Q(kind=kind) & ~Exists(current)
    unresolved.filter(over).update(resolved_at=now)


def _resolve_finished(now):
    unresolved = Notification.objects.filter(resolved_at__isnull=True)
    _resolve_lot_alerts(now, unresolved)
    waiting = _completable(Payment.objects.all()).values("pk")
    unresolved.filter(kind=Kind.PAYMENT_NEEDS_ACTION).exclude(subject_id__in=waiting).update(resolved_at=now)
    paused = AutoTopUp.objects.filter(status=AutoTopUp.Status.PAUSED).values("pk")
    unresolved.filter(kind=Kind.AUTO_TOP_UP_PAUSED).exclude(subject_id__in=paused).update(resolved_at=now)
    in_review = Payment.objects.filter(status=Payment.Status.NEEDS_REVIEW).values("pk")
    unresolved.filter(kind=Kind.PAYMENT_UNDER_REVIEW).exclude(subject_id__in=in_review).update(resolved_at=now)
    # A failed payment (and staff's request to pay it again) is over once the student has paid since.
    later_success = Payment.objects.filter(
        account__user=OuterRef("recipient"), status=Payment.Status.SUCCEEDED, settled_at__gt=OuterRef("created_at")
    )
    unresolved.filter(kind__in=[Kind.PAYMENT_FAILED, Kind.PAY_AGAIN]).filter(Exists(later_success)).update(
        resolved_at=now
    )
    # Hours a refund took are back when the refund failed or was cancelled after all.
    undone = Refund.objects.filter(status__in=Refund.UNDONE).values("pk")
    unresolved.filter(kind=Kind.REFUND_HOURS, subject_id__in=undone).update(resolved_at=now)
    # A hold is over once its dispute no longer holds hours: released, or closed for good.
    holding = Dispute.objects.filter(closed=False, minutes_held__gt=0).values("pk")
    unresolved.filter(kind=Kind.DISPUTE_HOLD).exclude(subject_id__in=holding).update(resolved_at=now)
    # Dunning is over once the subscription is no longer owed a payment (paid, or ended).
    overdue = Subscription.objects.filter(status__in=Subscription.OVERDUE).values("pk")
    unresolved.filter(kind=Kind.SUBSCRIPTION_PAST_DUE).exclude(subject_id__in=overdue).update(resolved_at=now)
    renewing = Subscription.objects.filter(
        status__in=Subscription.RUNNING, cancel_at_period_end=False, current_period_end__gt=now
    ).values("pk")
    unresolved.filter(kind=Kind.SUBSCRIPTION_RENEWING).exclude(subject_id__in=renewing).update(resolved_at=now)
    # Balance alerts are over once the balance is back at or above the reminder level, and above 0 h
    # (a level of 0 turns the low reminder off, not the depleted one).
    healthy = (
        with_available_minutes(Account.objects.all(), now=now)
        .filter(available__gte=F("low_balance_threshold_minutes"), available__gt=0)
        .values("pk")
    )
    unresolved.filter(kind__in=[Kind.LOW_BALANCE, Kind.BALANCE_DEPLETED], subject_id__in=healthy).update(
        resolved_at=now
    )


def _balance_alerts(now, accounts=None):
    # A period starts with every refill (purchase, staff adjustment, released hold).
    last_refill = (
        LedgerEntry.objects.filter(account=OuterRef("pk"), minutes__gt=0)
        .values("account")
        .annotate(last=Max("id"))
        .values("last")
    )
    refilled = with_available_minutes(accounts if accounts is not None else Account.objects.all(), now=now).annotate(
        last_refill=Subquery(last_refill)
    )
    refilled = refilled.filter(last_refill__isnull=False)
    # At any reminder level, 0 included (the student's "off"): having no hours left is news.
    depleted = _not_alerted(refilled.filter(available=0), "depleted:", _as_text("pk"), ":", _as_text("last_refill"))
    running_low = _not_alerted(
        refilled.filter(available__gt=0, available__lt=F("low_balance_threshold_minutes")),
        "low:",
        _as_text("pk"),
        ":",
        _as_text("last_refill"),
    )
    link = reverse("student:dashboard") + "#plans"
    for user_id, account_id, last_refill_id in depleted.values_list("user_id", "pk", "last_refill"):
        yield notification_build(
            recipient_id=user_id,
            kind=Kind.BALANCE_DEPLETED,
            subject_id=account_id,
            dedupe_key=f"depleted:{account_id}:{last_refill_id}",
            params={},
            link=link,
        )
    fields = ("user_id", "pk", "available", "low_balance_threshold_minutes", "last_refill")
    for user_id, account_id, available, threshold, last_refill_id in running_low.values_list(*fields):
        yield notification_build(
            recipient_id=user_id,
            kind=Kind.LOW_BALANCE,
            subject_id=account_id,
            dedupe_key=f"low:{account_id}:{last_refill_id}",
            params={"minutes": available, "threshold_minutes": threshold},
            link=link,
        )


def _expiry_alerts(now):
    usable = Lot.objects.usable(now)
    within_a_day = _not_alerted_by_key(usable.filter(expires_at__lte=now + timedelta(days=1)), _expiry_key(EXPIRING_1D))
    within_a_week = _not_alerted_by_key(
        usable.filter(expires_at__gt=now + timedelta(days=1), expires_at__lte=now + timedelta(days=7)),
        _expiry_key(EXPIRING_7D),
    )
    for lots, soon in ((within_a_day, True), (within_a_week, False)):
        for lot_id, user_id, name, remaining, expires_at, key in lots.values_list(
            "pk", "account__user_id", "name", "minutes_remaining", "expires_at", "alert_key"
        ):
            yield notification_build(
                recipient_id=user_id,
                kind=Kind.LOT_EXPIRING_1D if soon else Kind.LOT_EXPIRING_7D,
                subject_id=lot_id,
                dedupe_key=key,
                params={"lot": name, "minutes": remaining, "expires_at": moment(expires_at)},
                link=reverse("student:lot_detail", args=[lot_id]),
            )


def _expired_alerts(now):
    # By when the expiry was booked (not when the lot expired), so a late booking still alerts.
    # Only the entry of the lot's current expiry: a reopened lot that expired again has an older one.
    expired = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.EXPIRY, lot__expired_at__gte=now - RECENT_EXPIRIES, occurred_at=F("lot__expires_at")
    )
    expired = _not_alerted_by_key(expired, _expiry_key(EXPIRED, lot="lot__"))
    for lot_id, user_id, name, minutes, key in expired.values_list(
        "lot_id", "account__user_id", "lot__name", "minutes", "alert_key"
    ):
        yield notification_build(
            recipient_id=user_id,
            kind=Kind.LOT_EXPIRED,
            subject_id=lot_id,
            dedupe_key=key,
            params={"lot": name, "minutes": -minutes},
            link=reverse("student:lot_detail", args=[lot_id]),
        )


def _card_alerts(now):
    today = timezone.localdate(now)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    expiring = PaymentMethod.objects.active().filter(exp_year=year, exp_month=month)
    expiring = _not_alerted(expiring, "card:", _as_text("pk"), f":{year}-{month}")
    for card in expiring.select_related("account"):
        yield notification_build(
            recipient_id=card.account.user_id,
            kind=Kind.CARD_EXPIRING,
            subject_id=card.pk,
            dedupe_key=f"card:{card.pk}:{year}-{month}",
            params={"card": card.label, "exp_month": card.exp_month, "exp_year": card.exp_year},
            link=reverse("student:cards"),
        )


def _payment_alerts(now, payments=None):
    recent = payments if payments is not None else Payment.objects.filter(updated_at__gte=now - RECENT_PAYMENTS)
    # A payment cancelled because the student started another one is no news to them.
    # A subscription's failed renewal is told by the past-due alert, with its "pay now".
    failed = _not_alerted(
        recent.filter(status=Payment.Status.FAILED, subscription__isnull=True)
        .exclude(failure_code=Payment.Failure.CANCELED)
        .exclude(_told_by_auto_top_up()),
        "payment-failed:",
        _as_text("pk"),
    )
    # Finance's retry and automatic top-up run without the student on the page: their 3-D Secure
    # check is news at once.
    waiting = _not_alerted(
        _completable(recent).filter(
            Q(updated_at__lte=now - ACTION_ALERT_AFTER) | Q(retry_of__isnull=False) | Q(kind=Payment.Kind.AUTO_TOP_UP)
        ),
        "payment-action:",
        _as_text("pk"),
    )
    succeeded = _not_alerted(recent.filter(status=Payment.Status.SUCCEEDED), "payment-ok:", _as_text("pk"))
    in_review = _not_alerted(recent.filter(status=Payment.Status.NEEDS_REVIEW), "payment-review:", _as_text("pk"))
    for payment in failed.select_related("account", "plan"):
        yield notification_build(
            recipient_id=payment.account.user_id,
            kind=Kind.PAYMENT_FAILED,
            subject_id=payment.pk,
            dedupe_key=f"payment-failed:{payment.pk}",
            params=_paid(payment) | {"reason": payment.failure_message},
            link=reverse("student:dashboard") + "#plans",
        )
    for payment in waiting.select_related("account", "plan"):
        yield notification_build(
            recipient_id=payment.account.user_id,
            kind=Kind.PAYMENT_NEEDS_ACTION,
            subject_id=payment.pk,
            dedupe_key=f"payment-action:{payment.pk}",
            params=_paid(payment),
            link=_completion_link(payment),
        )
    for payment in in_review.select_related("account", "plan"):
        # Found by a pay click, a refresh or a webhook: the student may have left the page. In our
        # words only (our price, never Stripe's amount or ids): staff explain the rest.
        yield notification_build(
            recipient_id=payment.account.user_id,
            kind=Kind.PAYMENT_UNDER_REVIEW,
            subject_id=payment.pk,
            dedupe_key=f"payment-review:{payment.pk}",
            params=_paid(payment),
            link=reverse("student:dashboard"),
        )
    for payment in succeeded.select_related("account", "plan", "receipt"):
        receipt = getattr(payment, "receipt", None)
        yield notification_build(
            recipient_id=payment.account.user_id,
            kind=Kind.PAYMENT_SUCCEEDED,
            subject_id=payment.pk,
            dedupe_key=f"payment-ok:{payment.pk}",
            params=_paid(payment) | {"minutes": payment.minutes},
            link=reverse("student:receipt_download", args=[receipt.pk]) if receipt else reverse("student:receipts"),
        )


def _refund_alerts(now, refunds=None):
    """One alert per refund that took hours back (a refund of money only is told by its credit note)."""
    recent = refunds if refunds is not None else Refund.objects.filter(updated_at__gte=now - RECENT_PAYMENTS)
    taking = recent.filter(status__in=Refund.APPLIED, minutes_reversed__gt=0)
    for refund in _not_alerted(taking, "refund-hours:", _as_text("pk")).select_related(
        "payment__account", "payment__lot"
    ):
        payment = refund.payment
        yield notification_build(
            recipient_id=payment.account.user_id,
            kind=Kind.REFUND_HOURS,
            subject_id=refund.pk,
            dedupe_key=f"refund-hours:{refund.pk}",
            params={
                "lot": payment.lot.name,
                "amount_cents": refund.amount_cents,
                "currency": refund.currency,
                "minutes": refund.minutes_reversed,
            },
            link=reverse("student:lot_detail", args=[payment.lot_id]),
        )


def _dispute_alerts(now):
    """A dispute that holds a lot's hours (once per dispute), and each release of held hours."""
    holding = Dispute.objects.filter(closed=False, minutes_held__gt=0)
    for dispute in _not_alerted(holding, "dispute-hold:", _as_text("pk")).select_related(
        "payment__account", "payment__lot"
    ):
        payment = dispute.payment
        yield notification_build(
            recipient_id=payment.account.user_id,
            kind=Kind.DISPUTE_HOLD,
            subject_id=dispute.pk,
            dedupe_key=f"dispute-hold:{dispute.pk}",
            params={
                "lot": payment.lot.name,
                "amount_cents": dispute.amount_cents,
                "currency": dispute.currency,
                "minutes": dispute.minutes_held,
            },
            link=reverse("student:lot_detail", args=[payment.lot_id]),
        )
    released = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.DISPUTE_RELEASE, recorded_at__gte=now - RECENT_PAYMENTS)
    released = _not_alerted(released, "dispute-released:", _as_text("pk"))
    for entry_id, user_id, lot_id, name, minutes in released.values_list(
        "pk", "account__user_id", "lot_id", "lot__name", "minutes"
    ):
        yield notification_build(
            recipient_id=user_id,
            kind=Kind.DISPUTE_RELEASED,
            subject_id=lot_id,
            dedupe_key=f"dispute-released:{entry_id}",
            params={"lot": name, "minutes": minutes},
            link=reverse("student:lot_detail", args=[lot_id]),
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
        yield notification_build(
            recipient_id=payment.account.user_id,
            kind=Kind.SUBSCRIPTION_PAST_DUE,
            subject_id=payment.subscription_id,
            dedupe_key=f"subscription-past-due:{payment.pk}",
            params=_paid(payment) | {"reason": reason},
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
        yield notification_build(
            recipient_id=subscription.account.user_id,
            kind=Kind.SUBSCRIPTION_RENEWING,
            subject_id=subscription.pk,
            dedupe_key=f"subscription-renewal:{subscription.pk}:{int(subscription.current_period_end.timestamp())}",
            params={
                "plan": plan.name,
                "renews_at": moment(subscription.current_period_end),
                "amount_cents": plan.price_cents,
                "currency": plan.currency,
                "card": card.label if card else "",
                "minutes": plan.minutes,
            },
            link=page,
        )
    ended = Subscription.objects.filter(
        status=Subscription.Status.CANCELED, ended_at__gte=now - RECENT_SUBSCRIPTION_ENDS
    )
    for subscription in _not_alerted(ended, "subscription-ended:", _as_text("pk")).select_related("account", "plan"):
        yield notification_build(
            recipient_id=subscription.account.user_id,
            kind=Kind.SUBSCRIPTION_ENDED,
            subject_id=subscription.pk,
            dedupe_key=f"subscription-ended:{subscription.pk}",
            params={"plan": subscription.plan.name},
            link=page,
        )


def _completable(payments):
    """The payments waiting for 3-D Secure that the student may still complete: a blocked account is
    refused the check (and its payments are being cancelled), so an alert would lead nowhere."""
    return payments.filter(status=Payment.Status.REQUIRES_ACTION, account__blocked_at__isnull=True)


def _paid(payment):
    """What an alert about a payment names: its plan and our price (never Stripe's amount), and
    whether automatic top-up made it."""
    paid = {"plan": payment.plan.name, "amount_cents": payment.amount_cents, "currency": payment.currency}
    if payment.kind == Payment.Kind.AUTO_TOP_UP:
        paid["automatic"] = True
    return paid


def _told_by_auto_top_up():
    """Failed automatic top-ups whose news is automatic top-up's own: one that never reached the bank
    is tried again quietly (its pause says so if that keeps failing), and one that paused it is told
    by the pause. Only a first decline is a "failed" alert of its own."""
    paused_by = AutoTopUpEvent.objects.filter(kind=AutoTopUpEvent.Kind.PAUSED, payment=OuterRef("pk"))
    return Q(kind=Payment.Kind.AUTO_TOP_UP) & (Q(failure_code__in=NOT_A_DECLINE) | Exists(paused_by))


def _auto_top_up_alerts(now):
    """One alert per pause of automatic top-up that the student did not ask for. A pause for the
    bank's check is told by the payment's own alert (with its "complete" link)."""
    told_elsewhere = [AutoTopUp.PauseReason.STUDENT, AutoTopUp.PauseReason.AUTHENTICATION, AutoTopUp.PauseReason.REVIEW]
    pauses = AutoTopUpEvent.objects.filter(
        kind=AutoTopUpEvent.Kind.PAUSED,
        created_at__gte=now - RECENT_PAYMENTS,
        auto_top_up__status=AutoTopUp.Status.PAUSED,
    ).exclude(pause_reason__in=told_elsewhere)
    for event in _not_alerted(pauses, "auto-top-up-paused:", _as_text("pk")).select_related(
        "auto_top_up__account", "auto_top_up__plan"
    ):
        setting = event.auto_top_up
        limit = monthly_limit(
            plan=setting.plan,
            count_cap=setting.monthly_count_cap,
            amount_cap_cents=setting.monthly_amount_cap_cents,
        )
        yield notification_build(
            recipient_id=setting.account.user_id,
            kind=Kind.AUTO_TOP_UP_PAUSED,
            subject_id=setting.pk,
            dedupe_key=f"auto-top-up-paused:{event.pk}",
            params={
                "reason": event.pause_reason,
                # Staff's reason is for the audit log; the bank's or Stripe's words are the student's.
                "detail": "" if event.pause_reason == AutoTopUp.PauseReason.STAFF else event.detail,
                "failures": setting.failures_in_row,
                "resumes_on": setting.resumes_on.isoformat() if setting.resumes_at else None,
                "count_cap": limit.top_ups,
                "amount_cents": limit.amount_cents,
                "currency": limit.currency,
            },
            link=reverse("student:account") + "#auto-top-up",
        )


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
    """In the recipient's language and time zone, whoever raised the alert and whatever runs this."""
    context = {"notification": notification, "base_url": settings.PORTAL_BASE_URL}
    with reader_locale(notification.recipient):
        message = EmailMultiAlternatives(
            subject=notification.title,
            body=render_to_string(f"email/alerts/{notification.kind}.txt", context),
            to=[notification.recipient.email],
            connection=connection,
        )
        message.attach_alternative(render_to_string(f"email/alerts/{notification.kind}.html", context), "text/html")
    message.send()
