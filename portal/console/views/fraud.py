"""Fraud flags: the queue with its evidence, and clear / confirm / note on each flag."""

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from billing import fraud, refunds
from billing.errors import BillingError
from billing.models import FraudFlag
from portal.console.access import client_ip, console_view, forbidden, is_finance
from portal.console.filters import FraudFlagFilter
from portal.console.forms import FlagConfirmForm, NoteForm, ReasonForm
from portal.console.tables import FraudFlagTable
from portal.console.views.common import action_done, action_form, list_page, table_page


def _flags():
    return FraudFlag.objects.select_related("account__user", "payment")


@require_GET
@console_view
def flag_list(request):
    query = request.GET if "status" in request.GET else {"status": FraudFlag.Status.OPEN}
    found = FraudFlagFilter(query, queryset=_flags())
    table = table_page(request, FraudFlagTable(found.qs))
    return list_page(request, "console/fraud.html", table=table, filter=found)


ACTIONS = {
    # action: (form, finance only, past tense)
    "clear": (ReasonForm, False, "cleared"),
    "confirm": (FlagConfirmForm, True, "confirmed"),
    "note": (NoteForm, False, "noted"),
}


SUBMITS = {"clear": "Clear the flag", "confirm": "Confirm fraud", "note": "Add the note"}


@require_http_methods(["GET", "POST"])
@console_view
def flag_action(request, flag_id, action):
    """Open the action's form in the dialog; on success the flag's row is swapped in place."""
    flag = get_object_or_404(_flags(), pk=flag_id)
    form_class, finance_only, done = ACTIONS[action]
    if finance_only and not is_finance(request.user):
        return forbidden(request)
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _apply(request, flag, action, form.cleaned_data)
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            if not request.htmx:
                return action_done(request, f"Flag {done}.", redirect_to=reverse("console:flags"))
            table = FraudFlagTable([_flags().get(pk=flag.pk)], request=request)
            # The form sat in the dialog; the answer replaces the flag's row instead, and closes it.
            headers = {"HX-Retarget": f"#flag-{flag.pk}", "HX-Reswap": "outerHTML", "HX-Trigger": "dialog:close"}
            response = render(request, "console/_table_row.html", {"table": table, "message": f"Flag {done}."})
            for name, value in headers.items():
                response.headers[name] = value
            return response
    return action_form(
        request, {"form": form, "title": f"{action.title()} flag: {flag.get_rule_display()}", "submit": SUBMITS[action]}
    )


def _apply(request, flag, action, data):
    who = {"actor": request.user, "ip_address": client_ip(request)}
    if action == "clear":
        fraud.fraud_flag_clear(flag=flag, reason=data["reason"], **who)
    elif action == "note":
        fraud.fraud_flag_note(flag=flag, note=data["note"], **who)
    else:
        fraud.fraud_flag_confirm(flag=flag, reason=data["reason"], block=data["block"], **who)
        if data["refund"] and flag.payment_id:
            defaults = refunds.refund_defaults(payment=flag.payment)
            if defaults.refundable_cents:
                refunds.refund_issue(
                    payment=flag.payment,
                    amount_cents=defaults.refundable_cents,
                    minutes=defaults.default_minutes,
                    reason=f"Fraud confirmed: {data['reason']}",
                    **who,
                )
