"""Each person's language and time zone: chosen on the account page or the header's chooser, saved
on the user, and used for their pages; everything written to them (emails, PDFs, alerts) uses them
too, whoever triggers it (billing.formatting.reader_locale). Anything unreadable (a forged cookie,
an unknown zone) falls back to the defaults of the settings, never to an error."""

import zoneinfo
from functools import cache

from django.conf import settings
from django.http import HttpResponseRedirect
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from billing.formatting import time_zone_of

LANGUAGE_CODES = frozenset(code for code, _name in settings.LANGUAGES)
# The zones offered on the account page: first the ones this school's people live in.
COMMON_TIME_ZONES = ("Europe/Lisbon", "Atlantic/Madeira", "Atlantic/Azores", "Europe/London", "Europe/Berlin")


class LocaleChoiceInvalid(ValueError):
    pass


@cache
def time_zone_names():
    """Every IANA zone name this machine knows, common ones first."""
    rest = sorted(zoneinfo.available_timezones() - set(COMMON_TIME_ZONES))
    return [*COMMON_TIME_ZONES, *rest]


def locale_preferences_save(user, *, language, time_zone):
    """Save a person's language and time zone (blank: the site's defaults)."""
    if language and language not in LANGUAGE_CODES:
        raise LocaleChoiceInvalid(_("Choose one of the languages offered."))
    if time_zone and time_zone not in zoneinfo.available_timezones():
        raise LocaleChoiceInvalid(_("Choose a time zone from the list."))
    user.language = language
    user.time_zone = time_zone
    user.save(update_fields=["language", "time_zone"])


def language_remember(sender, request, user, **kwargs):
    """Receiver of user_logged_in: someone who never chose a language keeps the one their browser
    asked for, so that emails sent later by a background job read as their pages do."""
    if user.language or request is None:
        return
    language = translation.get_language_from_request(request)
    if language in LANGUAGE_CODES:
        user.language = language
        user.save(update_fields=["language"])


class UserLocaleMiddleware:
    """After LocaleMiddleware and authentication: a signed-in person's saved language wins over the
    browser's, and their own time zone is active while their request is served."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        if user.language in LANGUAGE_CODES:
            translation.activate(user.language)
            request.LANGUAGE_CODE = user.language
        timezone.activate(time_zone_of(user))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


@require_POST
def language_set(request):
    """The header's chooser: switch language at once (a cookie for everyone; saved on the user when
    signed in), then back to the page it was used on. An unknown language changes nothing."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = "/"
    response = HttpResponseRedirect(next_url)
    if language not in LANGUAGE_CODES:
        return response
    if request.user.is_authenticated:
        request.user.language = language
        request.user.save(update_fields=["language"])
    return language_cookie_set(response, language)


def language_cookie_set(response, language):
    """Remember `language` in the browser (LocaleMiddleware reads it), for the pages seen signed out."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
    )
    return response
