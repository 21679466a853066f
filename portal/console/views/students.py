"""Students: search, a student's whole record, and the hours staff may change by hand: record,
void, adjust, grant and extend (Finance, except recording and voiding within a day), and the
student's low-balance reminder level."""

from functools import partial

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods

from alerts.models import Notification
from alerts.notifications import session_record
from billing import hours_actions, ledger, profiles, topups
from billing.errors import BillingError, VoidTooLate
from billing.formatting import date_text, hours_text
from billing.fraud import blocks
from billing.models import Account, AuditEntry, AutoTopUpEvent, LedgerEntry, Lot, Payment, Subscription, Usage
from billing.selectors import balance_summary, cards_for_account
from portal.console.access import console_view, forbidden, is_finance
from portal.console.filters import StudentFilter
from portal.console.forms import (
    AccountLotsExtendForm,
    AdjustmentForm,
    GrantForm,
    LotExtendForm,
    LowBalanceLevelForm,
    SessionForm,
    VoidForm,
)
from portal.console.tables import AuditTable, LedgerTable, PaymentTable, SessionTable, StudentTable
from portal.console.views.common import (
    action_done,
    action_form,
    keyed_action,
    list_page,
    reason_action,
    table_page,
)
from portal.ratelimits import client_ip

SECTION_ROWS = 10
# Automatic top-up's history on the student's page: each trigger, charge and pause, newest first.
AUTO_TOP_UP_EVENTS = 25


@console_view
@require_GET
def student_list(request):
    found = StudentFilter(request.GET, queryset=Account.objects.select_related("user"))
    table = table_page(request, StudentTable(found.qs))
    return list_page(request, title=gettext("Students"), table=table, filterset=found, template="console/students.html")


@console_view
@require_GET
def student_detail(request, account_id):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    payments = Payment.objects.filter(account=account).select_related("account__user", "plan", "payment_method")
    ledger_entries = LedgerEntry.objects.filter(account=account).select_related("lot", "usage", "actor").order_by("-id")
    tables = {
        "ledger-table": LedgerTable(ledger_entries, prefix="ledger-"),
        "usage-table": SessionTable(account.usages.all(), prefix="usage-", void_since=_void_since(request.user)),
        "payments-table": PaymentTable(payments, prefix="payments-"),
        "audit-table": AuditTable(AuditEntry.objects.filter(account=account), prefix="audit-"),
    }
    target = request.htmx.target if request.htmx else None
    if target in tables:
        # One of the history tables was sorted or paged: only that table comes back.
        table = table_page(request, tables[target])
        return render(request, "portal/_swappable_table.html", {"table": table, "fragment_id": target})
    for table in tables.values():
        table_page(request, table)
    context = {
        "account": account,
        "summary": balance_summary(account=account),
        "lots": _lot_rows(Lot.objects.filter(account=account).select_related("payment").order_by("-purchased_at")),
        "cards": cards_for_account(account=account),
        "subscriptions": Subscription.objects.filter(account=account).select_related("plan")[:SECTION_ROWS],
        "alerts": Notification.objects.filter(recipient=account.user).order_by("-created_at")[:SECTION_ROWS],
        "flags": account.fraud_flags.all()[:SECTION_ROWS],
        "sign_ins": account.user.sign_ins.all()[:SECTION_ROWS],
        "auto_top_up": topups.auto_top_up_of(account=account),
        "auto_top_up_events": AutoTopUpEvent.objects.filter(auto_top_up__account=account).select_related(
            "payment", "actor"
        )[:AUTO_TOP_UP_EVENTS],
    } | {name.replace("-", "_"): table for name, table in tables.items()}
    return render(request, "console/student_detail.html", context)


@console_view
@require_http_methods(["GET", "POST"])
def session_create(request, account_id):
    """Record a tutoring session: it consumes hours, soonest-expiring package first."""
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = SessionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        act = partial(
            session_record,
            account=account,
            minutes=data["duration"],
            occurred_at=data["occurred_at"],
            tutor=data["tutor"],
            subject=data["subject"],
            recorded_by=request.user,
            key=data["key"],
            ip_address=client_ip(request),
        )
        done = keyed_action(request, form, act, done=gettext("Session recorded."), redirect_to=_student_url(account))
        if done:
            return done
    return action_form(
        request,
        {
            "form": form,
            "title": gettext("Record a session for %(email)s") % {"email": account.user.email},
            "submit": gettext("Record the session"),
        },
    )


@console_view
@require_http_methods(["GET", "POST"])
def usage_void(request, account_id, usage_id):
    """Void a session recorded by mistake: its minutes go back to the packages it drew on. Support
    may within SUPPORT_VOID_WINDOW of its recording (a slip noticed the same day); after that it is
    Finance's call, and Support is refused as for any Finance action."""
    usage = get_object_or_404(Usage.objects.select_related("account__user"), pk=usage_id, account=_account(account_id))
    late_allowed = is_finance(request.user)
    if not late_allowed and timezone.now() - usage.recorded_at > hours_actions.SUPPORT_VOID_WINDOW:
        return forbidden(request, str(VoidTooLate()))
    form = VoidForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        act = partial(
            hours_actions.usage_void,
            usage=usage,
            reason=form.cleaned_data["reason"],
            actor=request.user,
            key=form.cleaned_data["key"],
            late_allowed=late_allowed,
            ip_address=client_ip(request),
        )
        try:
            done = keyed_action(
                request, form, act, done=gettext("Session voided."), redirect_to=_student_url(usage.account)
            )
        except VoidTooLate as refused:  # the day ran out while the form was open
            return forbidden(request, str(refused))
        if done:
            return done
    intro = gettext(
        "%(subject)s with %(tutor)s on %(date)s: %(hours)s go back to the packages the session drew on. The session "
        "stays in both histories, marked voided with your reason."
    ) % {
        "subject": usage.subject,
        "tutor": usage.tutor,
        "date": date_text(usage.occurred_at),
        "hours": hours_text(usage.minutes),
    }
    texts = {"title": gettext("Void a session"), "intro": intro, "submit": gettext("Void the session"), "danger": True}
    return action_form(request, {"form": form} | texts)


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def hours_adjust(request, account_id):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = AdjustmentForm(request.POST or None, account=account)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        act = partial(
            ledger.lot_adjust_by_staff,
            lot=data["lot"],
            minutes=data["hours"],
            reason=data["reason"],
            actor=request.user,
            key=data["key"],
            ip_address=client_ip(request),
        )
        if done := keyed_action(request, form, act, done=gettext("Hours adjusted."), redirect_to=_student_url(account)):
            return done
    return action_form(
        request,
        {
            "form": form,
            "title": gettext("Adjust the hours of %(email)s") % {"email": account.user.email},
            "intro": gettext("Corrections are ledger entries with your name and reason; nothing is edited."),
            "submit": gettext("Adjust the hours"),
        },
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def hours_grant(request, account_id):
    """Give a student complimentary hours: a package of their own, with no payment and no receipt."""
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = GrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        act = partial(
            hours_actions.hours_grant,
            account=account,
            name=data["name"],
            minutes=data["duration"],
            expires_at=data["expires_at"],
            reason=data["reason"],
            actor=request.user,
            key=data["key"],
            ip_address=client_ip(request),
        )
        done = keyed_action(request, form, act, done=_granted_text, redirect_to=_student_url(account))
        if done:
            return done
    return action_form(
        request,
        {
            "form": form,
            "title": gettext("Grant hours to %(email)s") % {"email": account.user.email},
            "intro": gettext(
                "The student sees a package granted by your school; it is not a sale, so no receipt is issued."
            ),
            "submit": gettext("Grant the hours"),
        },
    )


def _granted_text(lot):
    return gettext("%(hours)s granted, usable until %(date)s.") % {
        "hours": hours_text(lot.minutes_purchased),
        "date": date_text(lot.expires_at),
    }


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def lot_extend(request, account_id, lot_id):
    """One package to a later expiry; an expired one is reopened (within the reopening window)."""
    lot = get_object_or_404(Lot.objects.select_related("account__user"), pk=lot_id, account=_account(account_id))
    reopening = lot.is_expired()
    form = LotExtendForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        act = partial(
            hours_actions.lot_extend,
            lot=lot,
            expires_at=data["expires_at"],
            reason=data["reason"],
            actor=request.user,
            key=data["key"],
            ip_address=client_ip(request),
        )
        done = keyed_action(request, form, act, done=_extended_text, redirect_to=_student_url(lot.account))
        if done:
            return done
    words = {
        "name": lot.name,
        "number": lot.pk,
        "date": date_text(lot.expires_at),
        "hours": hours_text(lot.minutes_remaining),
    }
    if reopening:
        texts = {
            "title": gettext("Reopen %(name)s #%(number)s") % words,
            "intro": gettext(
                "It expired on %(date)s. Reopening gives back the hours its expiry took, through the ledger, until "
                "the new date."
            )
            % words,
            "submit": gettext("Reopen the package"),
        }
    else:
        texts = {
            "title": gettext("Extend %(name)s #%(number)s") % words,
            "intro": gettext("It expires on %(date)s with %(hours)s left.") % words,
            "submit": gettext("Extend the package"),
        }
    return action_form(request, {"form": form} | texts)


def _extended_text(lot):
    return gettext("%(name)s #%(number)s now expires on %(date)s.") % {
        "name": lot.name,
        "number": lot.pk,
        "date": date_text(lot.expires_at),
    }


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def account_lots_extend(request, account_id):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = AccountLotsExtendForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        act = partial(
            hours_actions.account_lots_extend,
            account=account,
            days=data["days"],
            reason=data["reason"],
            actor=request.user,
            key=data["key"],
            ip_address=client_ip(request),
        )
        done = keyed_action(request, form, act, done=_lots_extended_text, redirect_to=_student_url(account))
        if done:
            return done
    return action_form(
        request,
        {
            "form": form,
            "title": gettext("Extend every usable package of %(email)s") % {"email": account.user.email},
            "intro": gettext("Each package that can still be used expires that many days later than it does now."),
            "submit": gettext("Extend the packages"),
        },
    )


def _lots_extended_text(lots):
    # The English says "package(s)", whatever the count; the other languages have their plural forms.
    return ngettext("%(count)d package(s) extended.", "%(count)d package(s) extended.", len(lots)) % {
        "count": len(lots)
    }


@console_view
@require_http_methods(["GET", "POST"])
def low_balance_level(request, account_id):
    """The balance at which the student is reminded to buy more. Support may change it: it moves no
    money and no hours."""
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    form = LowBalanceLevelForm(request.POST or None, initial={"minutes": account.low_balance_threshold_minutes})
    if request.method == "POST" and form.is_valid():
        try:
            profiles.low_balance_level_set(
                account=account,
                minutes=form.cleaned_data["minutes"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
                ip_address=client_ip(request),
            )
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            return action_done(request, gettext("Low-balance reminder level saved."), redirect_to=_student_url(account))
    return action_form(
        request,
        {
            "form": form,
            "title": gettext("Low-balance reminder of %(email)s") % {"email": account.user.email},
            "intro": gettext(
                "The student gets an alert when their balance falls to this level; they can change it too."
            ),
            "submit": gettext("Save the level"),
        },
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def student_block(request, account_id, block):
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    email = {"email": account.user.email}
    if block:
        texts = {
            "title": gettext("Block %(email)s") % email,
            "intro": gettext("A blocked student sees that purchases are paused instead of buy buttons."),
            "submit": gettext("Block"),
        }
    else:
        texts = {
            "title": gettext("Unblock %(email)s") % email,
            "intro": gettext("The student can buy hours again."),
            "submit": gettext("Unblock"),
        }
    return reason_action(
        request,
        partial(blocks.account_block if block else blocks.account_unblock, account=account),
        done=gettext("Student blocked from buying.") if block else gettext("Student may buy again."),
        redirect_to=_student_url(account),
        texts=texts | {"danger": block},
    )


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def auto_top_up_pause(request, account_id, pause):
    """Finance pauses a student's automatic top-up (the student cannot resume it), or lifts that pause."""
    account = get_object_or_404(Account.objects.select_related("user"), pk=account_id)
    email = {"email": account.user.email}
    if pause:
        texts = {
            "title": gettext("Pause automatic top-up of %(email)s") % email,
            "intro": gettext(
                "Nothing is bought automatically until Finance resumes it. The student sees that their school "
                "paused it; your reason stays in the audit log."
            ),
            "submit": gettext("Pause automatic top-up"),
        }
    else:
        texts = {
            "title": gettext("Resume automatic top-up of %(email)s") % email,
            "intro": gettext("It buys again when the student's balance falls below their level."),
            "submit": gettext("Resume automatic top-up"),
        }
    act = topups.auto_top_up_pause_by_staff if pause else topups.auto_top_up_resume_by_staff
    return reason_action(
        request,
        partial(act, account=account),
        done=gettext("Automatic top-up paused.") if pause else gettext("Automatic top-up resumed."),
        redirect_to=_student_url(account) + "#auto-top-up",
        texts=texts | {"danger": pause},
    )


def _student_url(account):
    return reverse("console:student", args=[account.pk])


def _void_since(user):
    """Sessions recorded since when `user` may void (None: any session, for Finance)."""
    return None if is_finance(user) else timezone.now() - hours_actions.SUPPORT_VOID_WINDOW


def _lot_rows(lots):
    """Each lot with what may be done to its expiry: "extend" while it is usable, "reopen" once it
    has expired but within the reopening window, else None."""
    now = timezone.now()

    def action(lot):
        if not lot.is_expired(now):
            return "extend"
        return "reopen" if hours_actions.lot_reopenable(lot, now=now) else None

    return [{"lot": lot, "action": action(lot)} for lot in lots]


def _account(account_id):
    """The student of a path; found by primary key, whose lookup answers "none" for an id past any
    integer column (a foreign key's lookup would hand it to SQLite, which overflows)."""
    return get_object_or_404(Account, pk=account_id)
