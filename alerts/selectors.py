"""Read-only queries for the bell, the banner and the inbox."""

from django.db.models import Case, IntegerField, Q, Value, When

from alerts.models import STUDENT_KINDS, EmailOptOut, Notification
from alerts.notifications import URGENCY


def unread_count(*, user, kinds=STUDENT_KINDS):
    """One indexed count (the partial index on open notifications): unread and still true, of the
    kinds the page shows (a student's by default; the console passes the staff member's)."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True, resolved_at__isnull=True)
    return unread.filter(kind__in=kinds).count()


def most_urgent_unread(*, user, besides=()):
    urgency = Case(
        *(When(kind=kind, then=Value(rank)) for rank, kind in enumerate(URGENCY)), output_field=IntegerField()
    )
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True, resolved_at__isnull=True)
    unread = unread.filter(kind__in=STUDENT_KINDS).exclude(kind__in=besides)
    return unread.annotate(urgency=urgency).order_by("urgency", "-created_at").first()


def inbox(*, user, kinds=STUDENT_KINDS):
    """The user's notifications of the kinds the page shows: a student never sees a staff kind there,
    nor staff a student's kind in the console."""
    return Notification.objects.filter(recipient=user, kind__in=kinds)


def emailed_kinds(*, user, offered_kinds=STUDENT_KINDS):
    """The kinds of alert, of those offered (a student's, or staff's), the user still gets by email."""
    opted_out = set(EmailOptOut.objects.filter(user=user).values_list("kind", flat=True))
    return [kind for kind in offered_kinds if kind not in opted_out]


PAYMENT_KINDS = [
    Notification.Kind.PAYMENT_SUCCEEDED,
    Notification.Kind.PAYMENT_NEEDS_ACTION,
    Notification.Kind.PAYMENT_FAILED,
    Notification.Kind.PAYMENT_UNDER_REVIEW,
]
LOT_KINDS = [Notification.Kind.LOT_EXPIRING_7D, Notification.Kind.LOT_EXPIRING_1D, Notification.Kind.LOT_EXPIRED]


def messages_about_payment(*, payment):
    """(time, text) of every alert the student got about a payment and the package it bought: what a
    dispute's "customer communication" quotes. In English, as written when raised (evidence goes to
    Stripe in English, whichever language the student reads)."""
    about = Q(kind__in=PAYMENT_KINDS, subject_id=payment.pk)
    if payment.lot_id:
        about |= Q(kind__in=LOT_KINDS, subject_id=payment.lot_id)
    notifications = Notification.objects.filter(about, recipient_id=payment.account.user_id)
    return [
        (
            notification.created_at,
            f"{notification.stored_title}: {notification.stored_body}"
            + (
                " (in the portal and by email)"
                if notification.email_status == Notification.Email.SENT
                else " (in the portal)"
            ),
        )
        for notification in notifications
    ]
