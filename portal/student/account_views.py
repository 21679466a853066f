"""The student's account page: name and billing details, the low-balance reminder level, email
alert choices, language and time zone, links to allauth's email, password and two-factor pages, and
recent sign-ins.

Each section is its own small form: under HTMX the section's partial comes back in place (with its
errors, or a notice); without JavaScript a saved form redirects to its section with a message, and
a refused one renders the whole page with the errors. The language and time zone are the exception:
saved, the whole page reloads (HX-Redirect under HTMX), so that it comes back in the new language."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from alerts.notifications import email_preferences_save
from alerts.selectors import emailed_kinds
from billing import topups
from billing.formatting import hours_text
from billing.ledger import account_open
from billing.profiles import billing_details_save, low_balance_level_set
from billing.selectors import plans_for_sale
from portal.locale import LocaleChoiceInvalid, language_cookie_set, locale_preferences_save
from portal.student.access import student_view
from portal.student.forms import (
    AutoTopUpForm,
    AutoTopUpStateForm,
    BillingDetailsForm,
    EmailPreferencesForm,
    LocalePreferencesForm,
    LowBalanceLevelForm,
)

# The sign-ins listed: enough to spot one that was not the student, short enough for a phone.
RECENT_SIGN_INS = 10
# In English (tests name them); translated where they are shown.
DETAILS_SAVED = gettext_noop(
    "Your details are saved. Receipts issued from now on show them; earlier receipts stay as they were."
)
REMINDER_SAVED = gettext_noop("We remind you when your balance falls below %(level)s.")
REMINDER_OFF = gettext_noop("The low-balance reminder is off. We still tell you when you have no hours left.")
ALERTS_SAVED = gettext_noop("Your email choices are saved. In the app you always see every alert.")
AUTO_TOP_UP_SAVED = gettext_noop("Automatic top-up is on: below %(level)s it buys %(plan)s with %(card)s.")
AUTO_TOP_UP_PAUSED = gettext_noop("Automatic top-up is paused until you resume it.")
AUTO_TOP_UP_RESUMED = gettext_noop("Automatic top-up is on again.")
AUTO_TOP_UP_OFF = gettext_noop("Automatic top-up is off. Your settings are kept for when you turn it on again.")
# The events of automatic top-up the student sees under its settings (the console shows them all).
RECENT_AUTO_TOP_UP_EVENTS = 5
LOCALE_SAVED = gettext_noop("Your language and time zone are saved. Emails and receipts use them too.")


@require_GET
@student_view
def account_page(request):
    account = account_open(user=request.user)
    return render(request, "portal/account.html", _page_context(request, account))


@require_POST
@student_view
def account_details(request):
    account = account_open(user=request.user)
    form = BillingDetailsForm(request.POST)
    if not form.is_valid():
        return _refused(request, account, "details", form)
    account = billing_details_save(account=account, **form.cleaned_data)
    return _saved(request, account, "details", _details_form(account, account.user), notice=_(DETAILS_SAVED))


@require_POST
@student_view
def account_reminder(request):
    account = account_open(user=request.user)
    form = LowBalanceLevelForm(request.POST)
    if not form.is_valid():
        return _refused(request, account, "reminder", form)
    account = low_balance_level_set(account=account, minutes=form.cleaned_data["level_minutes"])
    level = account.low_balance_threshold_minutes
    notice = _(REMINDER_SAVED) % {"level": hours_text(level)} if level else _(REMINDER_OFF)
    return _saved(request, account, "reminder", LowBalanceLevelForm.for_level(level), notice=notice)


@require_http_methods(["GET", "POST"])
@student_view
def alert_preferences(request):
    """The email alert choices, a section of the account page. The address of the page they once had
    still opens them (GET goes to the section)."""
    if request.method == "GET":
        return redirect(_section_url("alerts"))
    account = account_open(user=request.user)
    form = EmailPreferencesForm(request.POST)
    if not form.is_valid():
        return _refused(request, account, "alerts", form)
    email_preferences_save(user=request.user, emailed_kinds=form.cleaned_data["emailed"])
    return _saved(request, account, "alerts", _alerts_form(request.user), notice=_(ALERTS_SAVED))


@require_POST
@student_view
def account_auto_top_up(request):
    """Turn automatic top-up on, or change its settings; the notice says the most it can charge."""
    account = account_open(user=request.user)
    form = AutoTopUpForm(request.POST, **_auto_top_up_choices(account))
    if form.is_valid():
        data = form.cleaned_data
        try:
            setting = topups.auto_top_up_save(
                account=account,
                threshold_minutes=data["threshold_minutes"],
                plan=data["plan"],
                card=data["card"],
                monthly_count_cap=data["count_cap"],
                monthly_amount_cap_cents=data["amount_cap_cents"],
                actor=request.user,
            )
        except topups.AutoTopUpRefused as refused:
            form.add_error(None, str(refused))
    if form.errors:
        return _auto_top_up_answer(request, account, form=form)
    limit = topups.monthly_limit(
        plan=setting.plan, count_cap=setting.monthly_count_cap, amount_cap_cents=setting.monthly_amount_cap_cents
    )
    notice = _(AUTO_TOP_UP_SAVED) % {
        "level": hours_text(setting.threshold_minutes),
        "plan": setting.plan.name,
        "card": setting.card.label,
    }
    return _auto_top_up_answer(request, account, notice=f"{notice} {topups.monthly_limit_text(limit)}")


@require_POST
@student_view
def account_auto_top_up_state(request):
    """Pause, resume or turn off automatic top-up."""
    account = account_open(user=request.user)
    form = AutoTopUpStateForm(request.POST)
    if not form.is_valid():
        return _auto_top_up_answer(request, account, error=_("Please reload the page and try again."))
    action, notice = {
        "pause": (topups.auto_top_up_pause, AUTO_TOP_UP_PAUSED),
        "resume": (topups.auto_top_up_resume, AUTO_TOP_UP_RESUMED),
        "off": (topups.auto_top_up_turn_off, AUTO_TOP_UP_OFF),
    }[form.cleaned_data["action"]]
    try:
        action(account=account, actor=request.user)
    except topups.AutoTopUpRefused as refused:
        return _auto_top_up_answer(request, account, error=str(refused))
    return _auto_top_up_answer(request, account, notice=_(notice))


def _auto_top_up_answer(request, account, *, form=None, notice="", error=""):
    """The automatic top-up section again: in place under HTMX; else the page, at the section (with
    the notice as a message), or whole with the form's errors."""
    if not request.htmx and not form and not error:
        messages.success(request, notice)
        return redirect(_section_url("auto-top-up"))
    section = _auto_top_up_context(account, form=form) | {"auto_top_up_notice": notice, "auto_top_up_error": error}
    if request.htmx:
        return render(request, "portal/_auto_top_up.html", {"account": account} | section)
    return render(request, "portal/account.html", _page_context(request, account) | section)


def _auto_top_up_choices(account):
    return {"plans": list(plans_for_sale()), "cards": list(account.payment_methods.active())}


def _auto_top_up_context(account, form=None):
    setting = topups.auto_top_up_of(account=account)
    choices = _auto_top_up_choices(account)
    context = {
        "auto_top_up": setting,
        "auto_top_up_form": form or AutoTopUpForm.for_setting(account=account, setting=setting, **choices),
        "auto_top_up_has_cards": bool(choices["cards"]),
        "auto_top_up_events": setting.events.all()[:RECENT_AUTO_TOP_UP_EVENTS] if setting else [],
    }
    if setting is not None:
        limit = topups.monthly_limit(
            plan=setting.plan, count_cap=setting.monthly_count_cap, amount_cap_cents=setting.monthly_amount_cap_cents
        )
        context["auto_top_up_limit"] = topups.monthly_limit_text(limit)
    return context


@require_POST
@student_view
def account_locale(request):
    """Save the language and time zone, then reload the whole page: it comes back in the language
    just chosen (which also goes in the language cookie, for the pages before the next sign-in)."""
    form = LocalePreferencesForm(request.POST)
    if form.is_valid():
        try:
            locale_preferences_save(request.user, **form.cleaned_data)
        except LocaleChoiceInvalid as invalid:
            form.add_error(None, str(invalid))
    if form.errors:
        if request.htmx:
            return render(request, "portal/_account_locale.html", {"locale_form": form})
        account = account_open(user=request.user)
        return render(request, "portal/account.html", _page_context(request, account) | {"locale_form": form})
    with translation.override(request.user.language):
        messages.success(request, _(LOCALE_SAVED))
    url = _section_url("locale")
    response = HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return language_cookie_set(response, request.user.language)


def _page_context(request, account):
    return {
        "account": account,
        "details_form": _details_form(account, request.user),
        "reminder_form": LowBalanceLevelForm.for_level(account.low_balance_threshold_minutes),
        "alerts_form": _alerts_form(request.user),
        "locale_form": LocalePreferencesForm.for_user(request.user),
        "sign_ins": request.user.sign_ins.all()[:RECENT_SIGN_INS],
    } | _auto_top_up_context(account)


def _details_form(account, user):
    return BillingDetailsForm(
        initial={
            "first_name": user.first_name,
            "last_name": user.last_name,
            "billing_address": account.billing_address,
            "tax_id": account.tax_id,
        }
    )


def _alerts_form(user):
    return EmailPreferencesForm(initial={"emailed": emailed_kinds(user=user)})


def _saved(request, account, section, fresh_form, *, notice):
    """A section saved: its partial with the saved values and the notice, or (without HTMX) a
    redirect to the section with the notice as a message."""
    if not request.htmx:
        messages.success(request, notice)
        return redirect(_section_url(section))
    context = {"account": account, f"{section}_form": fresh_form, f"{section}_notice": notice}
    return render(request, f"portal/account.html#{section}", context)


def _refused(request, account, section, form):
    """A section refused: nothing was saved; the form comes back with its errors, in place or on the
    whole page."""
    if request.htmx:
        return render(request, f"portal/account.html#{section}", {"account": account, f"{section}_form": form})
    return render(request, "portal/account.html", _page_context(request, account) | {f"{section}_form": form})


def _section_url(section):
    return f"{reverse('student:account')}#{section}"
