"""Fraud flags: the queue with its evidence, and clear / confirm / note on each flag."""

from dataclasses import dataclass

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import reswap, retarget, trigger_client_event

from billing.errors import BillingError
from billing.fraud import review
from billing.models import FraudFlag
from portal.console.access import console_view
from portal.console.filters import FraudFlagFilter
from portal.console.forms import FlagConfirmForm, NoteForm, ReasonForm
from portal.console.tables import FraudFlagTable
from portal.console.views.common import action_done, action_form, list_page, table_page
from portal.live import live_page
from portal.ratelimits import client_ip


def _flags():
    return FraudFlag.objects.select_related("account__user", "payment", "resolved_by")


@console_view
@require_GET
@live_page
def flag_list(request):
    # Open flags unless a status is chosen ("Any status" is one), whatever else is searched.
    query = request.GET.copy()
    query.setdefault("status", FraudFlag.Status.OPEN)
    found = FraudFlagFilter(query, queryset=_flags())
    table = table_page(request, FraudFlagTable(found.qs))
    return list_page(
        request,
        title=gettext("Fraud flags"),
        table=table,
        filterset=found,
        intro=gettext(
            "Open flags first. Support can clear a flag or add a note; confirming fraud (and blocking, "
            "refunding) is for Finance."
        ),
    )


@dataclass(frozen=True)
class FlagAction:
    """An action's form and texts: the dialog's title (of the flag's `rule`), its button, the message after."""

    form: type
    title: str
    submit: str
    done: str


ACTIONS = {
    "clear": FlagAction(ReasonForm, _("Clear flag: %(rule)s"), _("Clear the flag"), _("Flag cleared.")),
    "confirm": FlagAction(FlagConfirmForm, _("Confirm flag: %(rule)s"), _("Confirm fraud"), _("Flag confirmed.")),
    "note": FlagAction(NoteForm, _("Note flag: %(rule)s"), _("Add the note"), _("Flag noted.")),
}


@console_view
@require_http_methods(["GET", "POST"])
def flag_clear(request, flag_id):
    return _flag_action(request, flag_id, "clear")


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def flag_confirm(request, flag_id):
    return _flag_action(request, flag_id, "confirm")


@console_view
@require_http_methods(["GET", "POST"])
def flag_note(request, flag_id):
    return _flag_action(request, flag_id, "note")


def _flag_action(request, flag_id, action):
    """Open the action's form in the dialog; on success the flag's row is swapped in place."""
    flag = get_object_or_404(_flags(), pk=flag_id)
    chosen = ACTIONS[action]
    form = chosen.form(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _apply(request, flag, action, form.cleaned_data)
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            return _flag_done(request, flag, str(chosen.done))
    title = chosen.title % {"rule": flag.get_rule_display()}
    return action_form(request, {"form": form, "title": title, "submit": str(chosen.submit)})


def _flag_done(request, flag, message):
    if not request.htmx:
        return action_done(request, message, redirect_to=reverse("console:flags"))
    table = FraudFlagTable([_flags().get(pk=flag.pk)], request=request)
    response = render(request, "console/_table_row.html", {"table": table, "message": message})
    # The form sat in the dialog; the answer replaces the flag's row instead, and closes the dialog.
    retarget(response, f"#flag-{flag.pk}")
    reswap(response, "outerHTML")
    return trigger_client_event(response, "dialog:close")


def _apply(request, flag, action, data):
    who = {"actor": request.user, "ip_address": client_ip(request)}
    if action == "clear":
        review.fraud_flag_clear(flag=flag, reason=data["reason"], **who)
    elif action == "note":
        review.fraud_flag_note(flag=flag, note=data["note"], **who)
    else:
        review.fraud_flag_confirm(flag=flag, reason=data["reason"], block=data["block"], refund=data["refund"], **who)
