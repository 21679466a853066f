"""Who may open the console, and what they may do there.

The console exists only for staff (anyone else gets 404, or the sign-in page when signed out).
Staff must have signed in with a TOTP code in this session. Two levels, as Django groups:
Support reads, retries webhooks, resends receipts and clears flags; Finance also moves money and
hours (refunds, dispute submissions, adjustments, blocks), each time on a code given in the last
CONSOLE_FINANCE_REAUTH_MINUTES (allauth's reauthentication step asks for a fresh one).
"""

import time
from functools import wraps
from urllib.parse import urlsplit

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext
from django_htmx.http import HttpResponseClientRedirect

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
            if second_factor_missing := second_factor_redirect(request):
                return second_factor_missing
            if _finance_only(finance, request.method):
                if not is_finance(request.user):
                    return forbidden(request)
                if stale := fresh_code_redirect(request):
                    return stale
            return view(request, *args, **kwargs)

        guarded.console_finance = finance
        return varies_on_htmx(guarded)

    return decorate(view) if view is not None else decorate


def second_factor_redirect(request):
    """Every staff surface (the console, the Django admin) opens only to a staff member who has TOTP
    set up and has given a code in this session. None when they have; otherwise where they must go."""
    if not Authenticator.objects.filter(user=request.user, type=Authenticator.Type.TOTP).exists():
        messages.info(request, gettext("Set up two-factor authentication (TOTP) to open the staff pages."))
        return redirect("mfa_activate_totp")
    if not _signed_in_with_totp(request):
        return redirect(f"{reverse('mfa_reauthenticate')}?{urlencode({'next': request.get_full_path()})}")
    return None


def _finance_only(finance, method):
    return finance is True or (bool(finance) and method in finance)


def forbidden(request, message=None):
    """A Support member asking for a Finance action: the console exists for them, the action not.
    `message` says why, where the general rule does not (a session too old for Support to void)."""
    return render(request, "console/forbidden.html", {"message": message}, status=403)


def _signed_in_with_totp(request):
    return any(record.get("method") == "mfa" for record in get_authentication_records(request, request.user))


def _gave_a_code_recently(request):
    """Money and hours move only on a code given in the last CONSOLE_FINANCE_REAUTH_MINUTES: a
    session left open on a shared desk for a week does not refund."""
    since = time.time() - settings.CONSOLE_FINANCE_REAUTH_MINUTES * 60
    return any(
        record.get("method") == "mfa" and record.get("at", 0) >= since
        for record in get_authentication_records(request, request.user)
    )


def fresh_code_redirect(request):
    """None when the staff member gave a code recently enough to move money (or change the admin);
    otherwise where they give a fresh one."""
    return None if _gave_a_code_recently(request) else _ask_for_a_fresh_code(request)


def _ask_for_a_fresh_code(request):
    """allauth's reauthentication step, then back: to this page for a GET; for a POST, which cannot be
    replayed after a redirect, to the page the form was on, where the action is taken again."""
    if request.method == "GET":
        back = request.get_full_path()
    else:
        back = _same_site_referer(request) or reverse("console:index")
        messages.info(request, gettext("Nothing was changed yet: confirm with a fresh code, then repeat the action."))
    url = f"{reverse('mfa_reauthenticate')}?{urlencode({'next': back})}"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _same_site_referer(request):
    referer = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(referer, {request.get_host()}, require_https=request.is_secure()):
        return None
    parts = urlsplit(referer)
    if not parts.path.startswith("/") or parts.path.startswith(("//", "/\\")):
        return None  # "https://host//evil.example" would make a path that reads as another host
    return parts.path + (f"?{parts.query}" if parts.query else "")


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
