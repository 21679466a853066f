"""Who may open the console, and what they may do there.

The console exists only for staff (anyone else gets 404, or the sign-in page when signed out).
Staff must have signed in with a TOTP code in this session. Two levels, as Django groups:
Support reads, retries webhooks, resends receipts and clears flags; Finance also moves money and
hours (refunds, dispute submissions, adjustments, blocks).
"""

from functools import wraps

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from portal.htmx import varies_on_htmx

SUPPORT = "billing.console_support"
FINANCE = "billing.console_finance"
GROUPS = {"Support": ["console_support"], "Finance": ["console_support", "console_finance"]}


def can_use_console(user):
    return user.is_active and user.is_staff and (user.has_perm(SUPPORT) or user.has_perm(FINANCE))


def is_finance(user):
    return user.has_perm(FINANCE)


def console_view(view=None, *, finance=False):
    """Guard a console view. `finance=True` marks an action only the Finance level may take;
    `finance={"POST"}` a page that Support may read but only Finance may change.

    The guarded view carries its rule (`console_finance`), so that a test can check every console
    route; and varies on HTMX, since console pages answer fragments to it."""

    def decorate(view):
        @login_required
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not can_use_console(request.user):
                raise Http404("No such page.")
            if not Authenticator.objects.filter(user=request.user, type=Authenticator.Type.TOTP).exists():
                messages.info(request, "Set up two-factor authentication (TOTP) to open the staff console.")
                return redirect("mfa_activate_totp")
            if not _signed_in_with_totp(request):
                return redirect(f"{reverse('mfa_reauthenticate')}?{urlencode({'next': request.get_full_path()})}")
            if _finance_only(finance, request.method) and not is_finance(request.user):
                return forbidden(request)
            return view(request, *args, **kwargs)

        guarded.console_finance = finance
        return varies_on_htmx(guarded)

    return decorate(view) if view is not None else decorate


def _finance_only(finance, method):
    return finance is True or (bool(finance) and method in finance)


def forbidden(request):
    """A Support member asking for a Finance action: the console exists for them, the action not."""
    return render(request, "console/forbidden.html", status=403)


def _signed_in_with_totp(request):
    return any(record.get("method") == "mfa" for record in get_authentication_records(request, request.user))


def client_ip(request):
    """The address an action came from, for the audit log (REMOTE_ADDR: a proxy in front must set it)."""
    return request.META.get("REMOTE_ADDR") or None


def console_groups_ensure(sender, **kwargs):
    """Create the Support and Finance groups after migrations (idempotent)."""
    if sender.label != "billing":
        return
    from django.contrib.auth.models import Group, Permission

    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))


def totp_activation_counts_as_sign_in(sender, request, user, authenticator, **kwargs):
    """Whoever just activated TOTP has proved a code in this session: let the console open without
    signing in again. (allauth records this itself for a sign-in with a code.)"""
    from allauth.account.internal.flows.login import record_authentication

    if authenticator.type == Authenticator.Type.TOTP and request is not None:
        record_authentication(request, user, "mfa", type="totp", id=authenticator.pk)
