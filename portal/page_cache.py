"""Rendered pages, kept in the cache under the versions of what they show: a student's pages under
their account's version, the console's payments under the accounts' version (billing.versions).

The key names everything the page is made of: the versions the view names (the account's moves in
the same transaction as any change the student's pages show), the plans on sale (their own
version, moved when a plan is saved or deleted), the reader (their email is in the header, their
access level in the console's menus), language and time zone, the URL and the HTMX target. A
change to any of them is a new key, so a cached page is never older than its data; what changes
with time alone (a lot expiring, "tomorrow" becoming "today") bounds how long an entry is used, and
PAGE_MAX_AGE bounds the rest (the pay buttons' signed tokens are minted when the page is rendered).

Each answer gets a fresh CSRF token: the cached copy holds a placeholder where the rendered one was.
Pages with a flash message waiting are never cached, and a cache that is down only costs a render.
"""

import hashlib
import logging
import re
from datetime import datetime, time, timedelta

from django.contrib.messages import get_messages
from django.core.cache import cache
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.utils import timezone, translation

from billing.versions import version_token, version_token_renew

PAGE_MAX_AGE = timedelta(minutes=5)
PLANS_VERSION_KEY = "portal:plans-version"
CSRF_PLACEHOLDER = "\x00csrf-token\x00"
_CSRF_RENDERED = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

logger = logging.getLogger(__name__)


def page_cached(request, *, versions, render):
    """The response `render()` makes, from the cache while nothing it shows has changed: while the
    `versions` (a tuple naming what the page shows, at which version) and the plans' stay the same.

    `render()` returns (response, moments): the response, and the moments at which its content
    changes by time alone (expiries, purchases dated ahead), of which only future ones count.
    """
    key = _page_key(request, versions)
    if key is None or len(get_messages(request)):
        return render()[0]
    now = timezone.now()
    kept = _cache_call(cache.get, key)
    if kept is not None and kept["until"] > now:
        return _answer(request, kept)
    response, moments = render()
    if response.status_code == 200 and not response.streaming:
        until = min([now + PAGE_MAX_AGE, _next_midnight(now)] + [moment for moment in moments if moment > now])
        _cache_call(cache.set, key, _kept(response, until), timeout=int((until - now).total_seconds()) + 1)
    return response


def plans_version():
    """The plans' version (None while the cache is down)."""
    return version_token(PLANS_VERSION_KEY)


def plans_changed(**_signal):
    """A plan was saved or deleted: every page showing plans is rendered again once it commits."""
    version_token_renew(PLANS_VERSION_KEY)


def _page_key(request, versions):
    """The page's cache key, or None when a version cannot be read (nothing is kept then)."""
    plans = plans_version()
    if plans is None or None in versions:
        return None
    parts = (
        versions,
        plans,
        request.user.pk,
        translation.get_language(),
        timezone.get_current_timezone_name(),
        request.user.email,
        request.get_full_path(),
        request.headers.get("HX-Request", ""),
        request.headers.get("HX-Target", ""),
    )
    return "portal:page:" + hashlib.sha256(repr(parts).encode()).hexdigest()


def csrf_token_held(content):
    """`content` with its CSRF token (one masked value for the whole render, in every form and in
    the body's HTMX headers) replaced by a placeholder: what two renders of the same data share."""
    rendered = _CSRF_RENDERED.search(content)
    return content.replace(rendered.group(1), CSRF_PLACEHOLDER) if rendered else content


def _kept(response, until):
    content = csrf_token_held(response.content.decode(response.charset))
    return {"until": until, "content": content, "content_type": response["Content-Type"]}


def _answer(request, kept):
    content = kept["content"].replace(CSRF_PLACEHOLDER, get_token(request))
    return HttpResponse(content, content_type=kept["content_type"])


def _next_midnight(now):
    """The start of the reader's next day: "tomorrow" and "in 3 days" read differently from then."""
    tomorrow = timezone.localdate(now) + timedelta(days=1)
    return timezone.make_aware(datetime.combine(tomorrow, time.min))


def _cache_call(method, *args, **kwargs):
    try:
        return method(*args, **kwargs)
    except Exception:  # the cache is down: the page is rendered as if nothing were kept
        logger.warning("The page cache is unavailable.", exc_info=True)
        return None
