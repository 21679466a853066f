"""The texts of a dispute's evidence, written from our records: what was bought, when and how the
hours were used, how the student used the portal and what we told them.

Not translated: Stripe's and the card network's reviewers read them, so they are English, with
money and dates as English writes them (billing.disputes.evidence writes them under English).
"""

from allauth.account.models import EmailAddress

from billing.formatting import date_text, datetime_text, duration_text, hours_text, money_text
from billing.models import LedgerEntry, Payment

RECENT_ACTIVITY = 20


def when(moment):
    """A moment in the evidence: local time with its zone, since Stripe's reviewers read it elsewhere."""
    return datetime_text(moment, zone=True)


def lot_sessions(lot):
    """(session, minutes drawn from this lot) for each session that used the lot, oldest first."""
    if lot is None:
        return []
    entries = (
        LedgerEntry.objects.filter(lot=lot, kind=LedgerEntry.Kind.USAGE)
        .select_related("usage")
        .order_by("usage__occurred_at", "id")
    )
    return [(entry.usage, -entry.minutes) for entry in entries]


def product_description(payment):
    plan = payment.plan
    bought = date_text(payment.settled_at or payment.created_at)
    lines = [
        f"{plan.name}: a prepaid package of {hours_text(payment.minutes)} of tutoring sessions, bought on "
        f"{bought} for {money_text(payment.amount_cents, payment.currency)}.",
        f"The hours are valid for {payment.validity_days} days"
        + (f" (until {date_text(payment.lot.expires_at)})." if payment.lot else "."),
        "Each session the student takes with a tutor draws its length from the package.",
    ]
    if plan.description:
        lines.insert(1, plan.description)
    return "\n".join(lines)


def service_date(payment, sessions):
    start = f"Hours available from {date_text(payment.settled_at or payment.created_at)}"
    if not sessions:
        return f"{start}; no session used yet."
    days = dict.fromkeys(date_text(session.occurred_at) for session, _ in sessions)  # each day once, in order
    return f"{start}; sessions on {', '.join(days)}."


def service_documentation(payment, sessions):
    if not sessions:
        return ""
    lines = [f"Sessions drawn from {payment.lot.name} (bought {date_text(payment.lot.purchased_at)}):"]
    for session, drawn in sessions:
        part = f" ({duration_text(drawn)} from this package)" if drawn != session.minutes else ""
        lines.append(
            f"{when(session.occurred_at)} · {duration_text(session.minutes)}{part} · {session.tutor} · "
            f"{session.subject}"
        )
    used = sum(drawn for _, drawn in sessions)
    lines.append(f"In all {hours_text(used)} of the {hours_text(payment.minutes)} bought were used.")
    return "\n".join(lines)


def access_activity_log(payment):
    """What we know of the student's use of the portal: the sign-up, their recent sign-ins (time,
    address, browser) and the account's own records."""
    account = payment.account
    user = account.user
    verified = EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists()
    lines = [
        f"Account {user.email}, signed up {when(user.date_joined)}"
        + ("; email address verified." if verified else "."),
        f"Last sign-in: {when(user.last_login)}." if user.last_login else "Last sign-in: not recorded.",
    ]
    events = [
        (
            sign_in.at,
            f"Signed in from {sign_in.ip_address or 'an unknown address'} ({sign_in.user_agent or 'browser unknown'})",
        )
        for sign_in in user.sign_ins.all()[:RECENT_ACTIVITY]
    ]
    events += [
        (card.created_at, f"Card {card.label} saved")
        for card in account.payment_methods.order_by("-created_at")[:RECENT_ACTIVITY]
    ]
    events += [
        (
            paid.settled_at or paid.created_at,
            f"Paid {money_text(paid.amount_cents, paid.currency)} for {paid.plan.name}"
            + (" (the disputed payment)" if paid.pk == payment.pk else ""),
        )
        for paid in account.payments.filter(status=Payment.Status.SUCCEEDED)
        .select_related("plan")
        .order_by("-created_at")[:RECENT_ACTIVITY]
    ]
    events += [
        (session.occurred_at, f"Session: {session.subject} with {session.tutor}, {duration_text(session.minutes)}")
        for session in account.usages.order_by("-occurred_at")[:RECENT_ACTIVITY]
    ]
    if events:
        lines.append("Recent activity:")
        lines += [f"{when(at)} · {what}" for at, what in sorted(events, key=lambda event: event[0])]
    return "\n".join(lines)


def customer_communication(payment, receipt, messages):
    """The messages we sent the student about this payment and the hours it bought."""
    user = payment.account.user
    messages = list(messages)
    if receipt is not None and receipt.emailed_at:
        messages.append((receipt.emailed_at, f"Receipt {receipt.number} emailed with its PDF attached"))
    if not messages:
        return ""
    lines = [f"Messages we sent to {user.email} about this payment:"]
    lines += [f"{when(at)} · {text}" for at, text in sorted(messages, key=lambda message: message[0])]
    return "\n".join(lines)
