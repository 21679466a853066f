"""Who may open the student's pages: anyone signed in. What they see is scoped by query to their
own account (billing.selectors' *_of(user=...)), so another student's id is simply not found."""

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

from portal.htmx import varies_on_htmx


def student_view(view):
    """Guard a student view: signed out, a page goes to the sign-in page; an HTMX request (a polled
    fragment, a button) is told to load the sign-in page whole, instead of swapping it into a
    corner of the old one."""
    protected = login_required(view)

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if request.htmx and not request.user.is_authenticated:
            return HttpResponseClientRedirect(resolve_url(settings.LOGIN_URL))
        return protected(request, *args, **kwargs)

    guarded.student_view = True
    return varies_on_htmx(guarded)
