"""Logs an operator can use: a request id on every line, one structured line a request, and nothing
secret on any line.

Each request gets an id (the proxy's X-Request-ID when it is a plain token, else a new one), kept in
a context variable for as long as the request is served, so that every line logged meanwhile carries
it, sent back as X-Request-ID, and carried by the Huey jobs the request enqueues (inside the task's
id: a Huey message has no headers, and its id is what Huey prints on each of its own lines, so the
consumer's lines carry it too).
"""

import contextvars
import logging
import re
import time
import uuid

from django.utils.functional import SimpleLazyObject, empty
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id is taken as it is only when it cannot smuggle anything into a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# Huey's own task ids are uuid4 strings (no dots), so the dot cannot be mistaken.
_TASK_ID_SEPARATOR = "."

# What is being served: {"request_id": ..., "task": ...}; None outside any request or job.
_context = contextvars.ContextVar("log_context", default=None)

request_logger = logging.getLogger("portal.requests")


def current_request_id():
    return (_context.get() or {}).get("request_id")


class RequestLogMiddleware:
    """First in MIDDLEWARE, so that its line has the final status and the whole duration (of the
    response's making: a streamed body goes on after it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = _incoming_request_id(request) or uuid.uuid4().hex
        # Kept until the response is closed (request_context_clear), not only while the middleware
        # runs: Django logs a 4xx or 5xx after the middleware has returned, and a streamed body is
        # written after that.
        _context.set({"request_id": request_id})
        started = time.monotonic()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        request_logger.info(
            "%s %s %s",
            request.method,
            _route(request) or "-",
            response.status_code,
            extra={
                "method": request.method,
                "route": _route(request),
                "status": response.status_code,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "user_id": _user_id(request),
            },
        )
        return response


def request_context_clear(**kwargs):
    """On request_finished: a worker's next line (or request) starts without this request's id."""
    _context.set(None)


def _incoming_request_id(request):
    candidate = request.headers.get(REQUEST_ID_HEADER, "")
    return candidate if _REQUEST_ID.match(candidate) else None


def _route(request):
    """The URL pattern that answered (`console/payments/<int:payment_id>/`), never the path: a path's
    query string can hold a token (Stripe's 3-D Secure return carries the PaymentIntent's client
    secret)."""
    match = getattr(request, "resolver_match", None)
    return match.route if match else None


def _user_id(request):
    # Only a user the request already loaded: reading it here would cost a query on pages that never
    # asked who is signed in (the health checks, the live poll's 304).
    user = request.__dict__.get("user")
    if type(user) is SimpleLazyObject:  # isinstance() would load it: a lazy object proxies __class__
        user = None if user._wrapped is empty else user._wrapped
    return user.pk if user is not None and user.is_authenticated else None


class ContextFilter(logging.Filter):
    """On every handler: the request id (and the Huey task) of what is being served."""

    def filter(self, record):
        context = _context.get() or {}
        record.request_id = context.get("request_id")
        record.task = context.get("task")
        return True


# What must never reach a log, whoever wrote the line (our code, Django, Stripe's library, a
# traceback): Stripe secret and restricted keys, webhook signing secrets, the client secrets of
# PaymentIntents and SetupIntents, and card numbers.
_SECRETS = (
    re.compile(r"\b[sr]k_(?:test|live)_\w+"),
    re.compile(r"\bwhsec_\w+"),
    re.compile(r"\b(?:pi|seti|src)_\w+?_secret_\w+"),
)
_DIGIT_RUN = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")


def scrub(text):
    for pattern in _SECRETS:
        text = pattern.sub("[redacted]", text)
    return _DIGIT_RUN.sub(_card_number_redacted, text)


def _card_number_redacted(match):
    digits = re.sub(r"\D", "", match.group())
    return "[card number redacted]" if _luhn_valid(digits) else match.group()


def _luhn_valid(digits):
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


class PlainFormatter(logging.Formatter):
    def format(self, record):
        return scrub(super().format(record))


class JsonLineFormatter(JsonFormatter):
    """One JSON object a line. Django's `request` attribute is left out: its repr holds the query
    string."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("reserved_attrs", [*JsonFormatter().reserved_attrs, "request"])
        super().__init__(*args, **kwargs)

    def format(self, record):
        return scrub(super().format(record))


def huey_request_ids_connect(huey):
    """Carry the request id from the request that enqueues a job to the consumer that runs it."""
    from huey.signals import SIGNAL_ENQUEUED

    @huey.signal(SIGNAL_ENQUEUED)
    def request_id_carry(signal, task):
        request_id = current_request_id()
        if request_id and not _request_id_of(task):
            task.id = f"{request_id}{_TASK_ID_SEPARATOR}{task.id}"
            task.revoke_id = f"r:{task.id}"

    @huey.pre_execute()
    def request_id_restore(task):
        # Set, never reset: what the task's completion signals enqueue after it carries the id too,
        # and the next task on this worker sets its own.
        _context.set({"request_id": _request_id_of(task), "task": task.name})


def _request_id_of(task):
    request_id, separator, _ = task.id.rpartition(_TASK_ID_SEPARATOR)
    return request_id if separator else None


def sentry_before_send(event, hint):
    """Sentry gets the request id as a tag to find the log lines with, and no secret in any text."""
    if request_id := current_request_id():
        event.setdefault("tags", {})["request_id"] = request_id
    return _scrubbed(event)


def _scrubbed(value):
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    return value
