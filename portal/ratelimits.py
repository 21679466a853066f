"""Rate limits on the student endpoints that call Stripe (django-ratelimit's counters).

Each endpoint has a limit per signed-in user and one per address (PORTAL_RATE_LIMITS), both counted
in the default cache (billing.ratelimits): Redis when REDIS_URL is set, so every process and host
shares one count; on the embedded default each process counts for itself. Over either limit the
request is answered 429 before Stripe is called: a page, an HTMX fragment in place, or JSON for the
card form's fetches.
(Sign-in, sign-up, password reset and the TOTP steps are limited by allauth itself:
ACCOUNT_RATE_LIMITS.)
"""

from functools import wraps

from allauth.account.adapter import get_adapter as get_account_adapter
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from billing.ratelimits import seconds_over_limit

# In English (tests name it); translated where it is shown.
MESSAGE = gettext_noop(
    "Too many attempts in a short time, so nothing was charged or changed. Please wait a few minutes, then try again."
)


def rate_limited(group, *, answer="page"):
    """Guard a view with the limits of PORTAL_RATE_LIMITS[group]; `answer="json"` for an endpoint
    that scripts call (its 429 carries {"error": ...} like its other refusals)."""

    def decorate(view):
        @wraps(view)
        def limited(request, *args, **kwargs):
            wait = seconds_over_limit(request, group)
            if wait:
                return too_many_requests(request, wait, answer=answer)
            return view(request, *args, **kwargs)

        limited.rate_limit = group
        return limited

    return decorate


def client_address(request):
    """The client's address for every per-address limit and the audit log: allauth's reading
    (REMOTE_ADDR, or behind ALLAUTH_TRUSTED_PROXY_COUNT proxies the X-Forwarded-For entry the
    outermost one added, which a client cannot forge)."""
    return get_account_adapter().get_client_ip(request)


def client_ip(request):
    """The client's address for the audit log and the sign-in history, or None when there is none."""
    try:
        return client_address(request)
    except PermissionDenied:
        return None


def too_many_requests(request, wait, *, answer="page"):
    message = _(MESSAGE)
    if answer == "json":
        response = JsonResponse({"error": message}, status=429)
    elif request.htmx:
        response = render(request, "portal/_rate_limited.html", {"message": message}, status=429)
    else:
        response = render(request, "429.html", {"message": message}, status=429)
    response["Retry-After"] = str(wait)
    return response
