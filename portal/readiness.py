"""/readyz: whether this process can serve, for an orchestrator deciding to send it traffic (and a
deploy deciding it came up). It checks what every page or job needs: the database, the cache, the
job queue and the media storage receipts are kept in.

Our own rather than django-health-check: that answers 500 (not 503) when a check fails, its JSON is
{name: message} without timings, it has no Huey check, and its messages are the exceptions' own
texts, which may name hosts and users. Each answer here carries the failing exception's type only;
its message goes to the log (scrubbed of secrets like every line).
"""

import logging
import sqlite3
import time
import uuid
from contextlib import closing

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from huey.contrib import djhuey
from huey.storage import SqliteStorage

logger = logging.getLogger(__name__)

PROBE_PREFIX = "readyz"


@require_safe  # GET, and HEAD for probes that only read the status
@never_cache
def readyz(request):
    """200 when every check passes, else 503; never behind a session or the cache."""
    report = readiness_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def readiness_report():
    checks = {name: _run(name, check) for name, check in CHECKS.items()}
    return {"status": "ok" if all(check["ok"] for check in checks.values()) else "unavailable", "checks": checks}


def _run(name, check):
    started = time.monotonic()
    try:
        detail = check()
    except Exception as error:
        logger.warning("Readiness check %s failed.", name, exc_info=True)
        return {"ok": False, "ms": _since(started), "error": type(error).__name__}
    return {"ok": True, "ms": _since(started), **detail}


def _since(started):
    return round((time.monotonic() - started) * 1000, 1)


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def _cache():
    # A key of its own each time: two probes at once never read each other's value.
    key, value = f"{PROBE_PREFIX}:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=30)
    try:
        if cache.get(key) != value:
            raise LookupError("The cache did not give back what was just stored.")
    finally:
        cache.delete(key)
    return {}


def _queue():
    # Read at each call, not imported: the tests swap in a queue that is down.
    huey = djhuey.HUEY
    if huey.immediate:
        return {"mode": "immediate"}  # jobs run inline (the tests): there is no queue to reach
    storage = huey.storage
    if isinstance(storage, SqliteStorage):
        return {"backend": "sqlite", "pending": _sqlite_queue_size(storage)}
    # RedisHuey: one round trip to its Redis (LLEN of the queue), as good as a ping.
    return {"backend": type(storage).__name__, "pending": huey.pending_count()}


def _sqlite_queue_size(storage):
    """The queue file opened afresh (mode=rw: a missing file is an error, never created empty), as
    the consumer in another process opens it; a worker's open connection would outlive the file."""
    with closing(sqlite3.connect(f"file:{storage.filename}?mode=rw", uri=True, timeout=5)) as queue:
        (count,) = queue.execute("SELECT count(*) FROM task WHERE queue = ?", (storage.name,)).fetchone()
    return count


def _storage():
    name = default_storage.save(f"{PROBE_PREFIX}/probe-{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    default_storage.delete(name)
    return {}


CHECKS = {"database": _database, "cache": _cache, "queue": _queue, "storage": _storage}
