"""Live updates: a page that shows what others change (a webhook settling a payment, staff recording
a session) polls a small URL every LIVE_POLL_SECONDS while its tab is visible (static/js/live.js),
sending the ETag of what it shows. Unchanged, the answer is 304 Not Modified, decided from a version
alone; changed, the answer is the poller again with the new ETag, and an HX-Trigger that makes the
page's parts fetch themselves afresh (they listen to it as to the events of the page's own actions).

Polling rather than server-sent events: each poll is one short request, which the sync gunicorn
workers and any number of web processes serve like any other, and a 304 costs two queries.

Staff pages (`live_page`) have no version of their own: what they show comes from many tables at
once. Their poll renders the page and compares a digest of it, so an unchanged poll is still a 304
with nothing sent and nothing swapped, for the few staff who keep a queue open.

A poll with `?sync=1` answers the current ETag without the trigger: the page asks for it after its
own action refreshed its parts, so that the next poll does not refresh them a second time.
"""

import hashlib
import json
import re
from functools import wraps

from django.conf import settings
from django.http import HttpResponseNotModified
from django.shortcuts import render
from django.utils import timezone, translation
from django_htmx.http import trigger_client_event

from portal.page_cache import csrf_token_held


def live_etag(*parts):
    """A strong ETag for a page's version, in the reader's language and time zone (which change it)."""
    parts = (*parts, translation.get_language(), timezone.get_current_timezone_name())
    return '"' + hashlib.sha256(repr(parts).encode()).hexdigest()[:32] + '"'


def live_context(*, etag, url):
    """What templates/_live.html needs: the poll's URL, the ETag it sends, how often."""
    headers = json.dumps({"If-None-Match": etag})
    return {"live_url": url, "live_headers": headers, "live_seconds": settings.LIVE_POLL_SECONDS}


def live_answer(request, *, etag, url, event):
    """The poller of `url` holding `etag`, with `event` triggered unless the page only asked to sync."""
    response = render(request, "_live.html", live_context(etag=etag, url=url))
    response["ETag"] = etag
    response["Cache-Control"] = "no-store"
    if request.GET.get("sync") != "1":
        trigger_client_event(response, event)
    return response


def live_unchanged(request, etag):
    """Whether the page already shows `etag` (If-None-Match, as the poller sends it)."""
    sent = request.headers.get("If-None-Match", "")
    return request.GET.get("sync") != "1" and etag in (tag.strip() for tag in sent.split(","))


# Where a staff page's poller carries its ETag: the digest is taken with this in place (it cannot
# hold itself), then written in.
ETAG_PLACEHOLDER = "live-etag-placeholder"
LIVE_REGION = "live-region"
_REGION = re.compile(r'<div id="live-region">(.*)<!--/live-region-->', re.DOTALL)


def live_page(view):
    """A staff page that follows changes made elsewhere (templates/console/base.html): its content
    sits in #live-region, which its poller fetches again; 304 while the page's digest is unchanged."""

    @wraps(view)
    def live(request, *args, **kwargs):
        request.live = live_context(etag=f'"{ETAG_PLACEHOLDER}"', url=request.get_full_path())
        response = view(request, *args, **kwargs)
        if response.status_code != 200 or response.streaming:
            return response
        content = response.content.decode(response.charset)
        digest = hashlib.sha256(csrf_token_held(_region_of(content)).encode()).hexdigest()[:32]
        etag = f'"{digest}"'
        polled = request.htmx and request.htmx.target == LIVE_REGION
        if polled and live_unchanged(request, etag):
            return HttpResponseNotModified()
        response.content = content.replace(ETAG_PLACEHOLDER, digest)
        response["ETag"] = etag
        return response

    return live


def _region_of(content):
    """What the poll would swap in: the page's live region (the rest, a message shown once, the
    header, never changes what the queue shows)."""
    found = _REGION.search(content)
    return found.group(1) if found else content
