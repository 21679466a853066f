"""Staff alerts: what the console's people must hear about without opening it (a new dispute, its
evidence due soon, a new fraud flag, webhook events failing, payments stuck in flight, a background
job late), and who.

Finance get every kind; Support get the kinds they can act on (they retry webhook events and clear
fraud flags; disputes, stuck payments and late jobs, the reconciliations among them, are Finance's
to answer). A recipient is an active staff
member with a console role (what portal.console.access.can_use_console checks), read from the
groups' permissions in one query. Each alert exists once per recipient and subject: its dedupe key
names both. Like alerts.notifications, a scan resolves what is over, then creates what is missing
with one query per rule and one bulk insert that skips keys a concurrent scan inserted meanwhile.
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from alerts.models import Notification
from alerts.notifications import notification_build
from alerts.texts import moment
from billing.jobs import LATE_AFTER_PERIODS, jobs_late
from billing.models import Dispute, FraudFlag, Payment, WebhookEvent
from billing.payments import ABANDONED_AFTER, STUCK_AFTER

Kind = Notification.Kind
# The permissions of the console's two levels (billing's models declare them; the groups carry them).
SUPPORT_PERMISSION = "console_support"
FINANCE_PERMISSION = "console_finance"
SUPPORT_KINDS = (Kind.STAFF_WEBHOOK_FAILED, Kind.STAFF_FRAUD_FLAG)
FINANCE_KINDS = (
    Kind.STAFF_DISPUTE_OPENED,
    Kind.STAFF_EVIDENCE_DUE,
    Kind.STAFF_FRAUD_FLAG,
    Kind.STAFF_WEBHOOK_FAILED,
    Kind.STAFF_PAYMENT_STUCK,
    Kind.STAFF_JOB_STALE,
)
# A dispute or a flag older than this when first scanned (the day staff alerts went live, or a
# flag raised while the scans were down for long) is in the console's lists, not news.
RECENT = timedelta(days=7)
EVIDENCE_DUE_WITHIN = timedelta(hours=48)
# An event handler that keeps failing after two automatic retries (30 s, then 60 s later) is a bug
# or an outage worth a person; a single failure retried fine is not.
WEBHOOK_FAILURES_BEFORE_ALERT = 3
# The reconciliation job (every 5 minutes) takes up a payment STUCK_AFTER it started, and one
# waiting for 3-D Secure ABANDONED_AFTER it started; three of its runs later, it has not managed.
RECONCILIATION_RUNS = timedelta(minutes=15)


def staff_kinds_for(user):
    """The staff kinds a user is offered (in the bell, the inbox, the email settings): none for a
    student or for staff without a console role."""
    if not (user.is_active and user.is_staff):
        return ()
    if user.has_perm(f"billing.{FINANCE_PERMISSION}"):
        return FINANCE_KINDS
    return SUPPORT_KINDS if user.has_perm(f"billing.{SUPPORT_PERMISSION}") else ()


def staff_alerts_scan():
    """Resolve the staff alerts that are over, then raise the missing ones. Returns how many are new."""
    now = timezone.now()
    _resolve_finished()
    late_jobs = jobs_late(now=now)
    _resolve_jobs_started_again(late_jobs)
    finance = _holders(FINANCE_PERMISSION)
    console = _holders(SUPPORT_PERMISSION) | finance
    recipients = {kind: console if kind in SUPPORT_KINDS else finance for kind in FINANCE_KINDS}
    return sum(
        _create(candidates)
        for candidates in (
            _dispute_alerts(now, recipients[Kind.STAFF_DISPUTE_OPENED], recipients[Kind.STAFF_EVIDENCE_DUE]),
            _flag_alerts(now, recipients[Kind.STAFF_FRAUD_FLAG]),
            _webhook_alerts(recipients[Kind.STAFF_WEBHOOK_FAILED]),
            _stuck_payment_alerts(now, recipients[Kind.STAFF_PAYMENT_STUCK]),
            _late_job_alerts(late_jobs, recipients[Kind.STAFF_JOB_STALE]),
        )
    )


def _holders(codename):
    """Ids of the active staff holding a console permission, through a group, directly, or as superusers."""
    granted = Q(groups__permissions__codename=codename, groups__permissions__content_type__app_label="billing")
    granted |= Q(user_permissions__codename=codename, user_permissions__content_type__app_label="billing")
    staff = get_user_model().objects.filter(is_active=True, is_staff=True)
    return set(staff.filter(granted | Q(is_superuser=True)).values_list("pk", flat=True).distinct())


def _awaiting_response():
    """Disputes Stripe waits for us on: neither answered (evidence, acceptance) nor closed."""
    return Dispute.objects.filter(
        status__in=Dispute.AWAITING_RESPONSE, closed=False, evidence_submitted_at__isnull=True, accepted_at__isnull=True
    )


# The events whose processing may call for a staff alert at once: a dispute or a fraud warning
# applied, or an event that failed or found nothing to apply to. Any other (most of the traffic:
# payments, refunds, cards) leaves it to the periodic scan, so a storm of deliveries costs no scans.
ALERTING_EVENT_TYPES = ("charge.dispute.", "radar.early_fraud_warning.")


def event_may_alert_staff(*, event_id):
    event = WebhookEvent.objects.filter(pk=event_id).values("type", "status").first()
    if event is None:
        return False
    return event["type"].startswith(ALERTING_EVENT_TYPES) or event["status"] in (
        WebhookEvent.Status.FAILED,
        WebhookEvent.Status.ORPHAN,
    )


def _failing_events():
    failing = Q(status=WebhookEvent.Status.FAILED, attempts__gte=WEBHOOK_FAILURES_BEFORE_ALERT)
    return WebhookEvent.objects.filter(failing | Q(status=WebhookEvent.Status.ORPHAN))


def _stuck_payments(now):
    processing = Q(status=Payment.Status.PROCESSING, created_at__lte=now - STUCK_AFTER - RECONCILIATION_RUNS)
    waiting = Q(status=Payment.Status.REQUIRES_ACTION, created_at__lte=now - ABANDONED_AFTER - RECONCILIATION_RUNS)
    return Payment.objects.filter(processing | waiting)


def _resolve_finished():
    now = timezone.now()
    unresolved = Notification.objects.filter(resolved_at__isnull=True)
    unresolved.filter(kind__in=[Kind.STAFF_DISPUTE_OPENED, Kind.STAFF_EVIDENCE_DUE]).exclude(
        subject_id__in=_awaiting_response().values("pk")
    ).update(resolved_at=now)
    open_flags = FraudFlag.objects.filter(status=FraudFlag.Status.OPEN).values("pk")
    unresolved.filter(kind=Kind.STAFF_FRAUD_FLAG).exclude(subject_id__in=open_flags).update(resolved_at=now)
    # One alert per person while events keep failing: it is over once none is (retried fine, or ignored).
    if not _failing_events().exists():
        unresolved.filter(kind=Kind.STAFF_WEBHOOK_FAILED).update(resolved_at=now)
    # Settled either way, or left for staff's review (which the payment's page shows).
    in_flight = Payment.objects.filter(status__in=Payment.IN_FLIGHT).values("pk")
    unresolved.filter(kind=Kind.STAFF_PAYMENT_STUCK).exclude(subject_id__in=in_flight).update(resolved_at=now)


def _lateness(status):
    """What one stretch of a job's lateness is called: the job and the start it is late since (a run
    its lock refused is no start), so that the alert resolved when the job starts again is raised
    anew if it falls behind once more."""
    return f"{status.job.name}:{moment(status.last_started_at) or 'never'}"


def _resolve_jobs_started_again(late_jobs):
    Notification.objects.filter(kind=Kind.STAFF_JOB_STALE, resolved_at__isnull=True).exclude(
        params__lateness__in=[_lateness(status) for status in late_jobs]
    ).update(resolved_at=timezone.now())


def _not_alerted_to_all(subjects, kind, recipients):
    """`subjects` left without the ones every recipient already has an alert of `kind` about (an
    anti-join on a count, so a staff member who joins later is still told of what is open)."""
    alerted = (
        Notification.objects.filter(kind=kind, subject_id=OuterRef("pk"), recipient_id__in=recipients)
        .values("subject_id")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return subjects.annotate(alerted=Coalesce(Subquery(alerted), 0)).filter(alerted__lt=len(recipients))


def _create(candidates):
    """Insert the alerts no recipient has yet; returns how many were new."""
    candidates = {candidate.dedupe_key: candidate for candidate in candidates}
    existing = set(Notification.objects.filter(dedupe_key__in=list(candidates)).values_list("dedupe_key", flat=True))
    new = [candidate for key, candidate in candidates.items() if key not in existing]
    Notification.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def _each(recipients, **alert):
    """The same alert, once per recipient (each reads it in their own language): its key ends with the
    recipient's id."""
    key = alert.pop("key")
    for recipient_id in sorted(recipients):
        yield notification_build(recipient_id=recipient_id, dedupe_key=f"{key}:{recipient_id}", **alert)


def _dispute_alerts(now, opened_to, due_to):
    awaiting = _awaiting_response().select_related("payment__account__user")
    if opened_to:
        new = _not_alerted_to_all(awaiting.filter(created_at__gte=now - RECENT), Kind.STAFF_DISPUTE_OPENED, opened_to)
        for dispute in new:
            yield from _each(
                opened_to,
                kind=Kind.STAFF_DISPUTE_OPENED,
                subject_id=dispute.pk,
                key=f"staff-dispute:{dispute.pk}",
                params=_disputed(dispute) | {"reason": dispute.reason},
                link=reverse("console:dispute", args=[dispute.pk]),
            )
    if due_to:
        soon = awaiting.filter(evidence_due_by__gt=now, evidence_due_by__lte=now + EVIDENCE_DUE_WITHIN)
        for dispute in _not_alerted_to_all(soon, Kind.STAFF_EVIDENCE_DUE, due_to):
            yield from _each(
                due_to,
                kind=Kind.STAFF_EVIDENCE_DUE,
                subject_id=dispute.pk,
                key=f"staff-evidence:{dispute.pk}",
                params=_disputed(dispute),
                link=reverse("console:dispute", args=[dispute.pk]),
            )


def _disputed(dispute):
    return {
        "student": dispute.payment.account.user.email,
        "amount_cents": dispute.amount_cents,
        "currency": dispute.currency,
        "due_by": moment(dispute.evidence_due_by),
    }


def _flag_alerts(now, recipients):
    if not recipients:
        return
    flags = FraudFlag.objects.filter(status=FraudFlag.Status.OPEN, created_at__gte=now - RECENT)
    for flag in _not_alerted_to_all(flags, Kind.STAFF_FRAUD_FLAG, recipients).select_related("account__user"):
        student = flag.account.user.email
        yield from _each(
            recipients,
            kind=Kind.STAFF_FRAUD_FLAG,
            subject_id=flag.pk,
            key=f"staff-flag:{flag.pk}",
            params={"student": student, "rule": flag.rule},
            link=f"{reverse('console:flags')}?{urlencode({'status': FraudFlag.Status.OPEN, 'q': student})}",
        )


def _webhook_alerts(recipients):
    """One alert per person for a stretch of failures (not one per event): named after the newest
    failing event when it is raised, so the next stretch, after this one is over, alerts again."""
    if not recipients:
        return
    failing = _failing_events().aggregate(count=Count("pk"), newest=Max("pk"))
    if not failing["count"]:
        return
    still_told = Notification.objects.filter(kind=Kind.STAFF_WEBHOOK_FAILED, resolved_at__isnull=True)
    untold = set(recipients) - set(still_told.values_list("recipient_id", flat=True))
    link = f"{reverse('console:webhooks')}?{urlencode({'status': sorted(WebhookEvent.RETRYABLE)}, doseq=True)}"
    yield from _each(
        untold,
        kind=Kind.STAFF_WEBHOOK_FAILED,
        subject_id=failing["newest"],
        key=f"staff-webhooks:{failing['newest']}",
        params={"count": failing["count"]},
        link=link,
    )


def _stuck_payment_alerts(now, recipients):
    if not recipients:
        return
    stuck = _not_alerted_to_all(_stuck_payments(now), Kind.STAFF_PAYMENT_STUCK, recipients)
    for payment in stuck.select_related("account__user"):
        yield from _each(
            recipients,
            kind=Kind.STAFF_PAYMENT_STUCK,
            subject_id=payment.pk,
            key=f"staff-stuck:{payment.pk}",
            params={
                "payment": payment.pk,
                "amount_cents": payment.amount_cents,
                "currency": payment.currency,
                "student": payment.account.user.email,
                "started_at": moment(payment.created_at),
                "status": payment.status,
            },
            link=reverse("console:payment", args=[payment.pk]),
        )


def _late_job_alerts(late_jobs, recipients):
    """One alert per person for each late job, until it starts again."""
    if not recipients:
        return
    for status in late_jobs:
        yield from _each(
            recipients,
            kind=Kind.STAFF_JOB_STALE,
            key=f"staff-job:{_lateness(status)}",
            params={
                "job": status.job.function,
                "schedule": status.job.schedule.crontab,
                "last_started_at": moment(status.last_started_at),
                "periods": LATE_AFTER_PERIODS,
                "lateness": _lateness(status),
            },
            link=reverse("console:system"),
        )
