"""What every console page shares: tables that page and swap, and actions that open in a dialog."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django_htmx.http import HttpResponseClientRedirect

from billing.errors import ActionAlreadyTaken, BillingError
from portal.console.forms import ReasonForm
from portal.ratelimits import client_ip
from portal.tables import table_paginate

PER_PAGE = 25


def table_page(request, table, *, lazy=False):
    """Sort and page a console table (see portal.tables.table_paginate; `lazy` for the tables that
    grow to millions of rows)."""
    return table_paginate(request, table, per_page=PER_PAGE, lazy=lazy)


def list_page(
    request, *, title, table, filterset=None, template="console/list.html", fragment_id="console-table", **extra
):
    """A filtered table page; an HTMX request from its filter form or pager gets only the table
    (and the export link, which follows the filters)."""
    context = {"title": title, "table": table, "filter": filterset, "fragment_id": fragment_id} | extra
    if request.htmx and request.htmx.target == fragment_id:
        return render(request, "console/_table_swap.html", context)
    return render(request, template, context)


def action_form(request, context):
    """An action's form (console/action.html): inside the page's dialog for HTMX, or as a page of
    its own without JS. `context` names the title, the submit label and where the form posts."""
    context = {"url": request.get_full_path(), "submit": gettext("Save"), "danger": False} | context
    template = "console/action.html#form" if request.htmx else "console/action.html"
    return render(request, template, context)


def action_done(request, message, *, redirect_to, level=messages.SUCCESS):
    """After an action: a message, then back to the page it concerns (HTMX follows with a full load,
    so every figure on it is fresh)."""
    messages.add_message(request, level, message)
    if request.htmx:
        return HttpResponseClientRedirect(redirect_to)
    return redirect(redirect_to)


def reason_action(request, act, *, done, redirect_to, texts):
    """An action staff confirm with a reason (block, accept a dispute, resolve a payment): on a valid
    POST, `act(actor=, reason=, ip_address=)`, then `done` and back to `redirect_to`; a refusal of
    the domain is shown on the form. `done` is the message, or a function of what `act` returned
    giving (message level, message) when the outcome decides it (a retried charge). `texts` are the
    dialog's title, intro, submit and danger."""
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = act(actor=request.user, reason=form.cleaned_data["reason"], ip_address=client_ip(request))
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            level, message = done(outcome) if callable(done) else (messages.SUCCESS, done)
            return action_done(request, message, redirect_to=redirect_to, level=level)
    return action_form(request, {"form": form} | texts)


def keyed_action(request, form, act, *, done, redirect_to):
    """Take the action of a valid form that carries a one-time key (portal.console.forms.OneTimeKeyForm):
    `act()` calls the service; then `done` (the message, or a function of what `act` returned giving
    it) and back to `redirect_to`. The same key sent again (a double submit) says it was done already,
    as news rather than an error. A refusal of the domain goes onto the form and None is returned: the
    caller shows the form again, with a fresh key, since nothing was done."""
    try:
        outcome = act()
    except ActionAlreadyTaken as taken:
        return action_done(request, str(taken), redirect_to=redirect_to, level=messages.INFO)
    except BillingError as refused:
        form.add_error(None, str(refused))
        return None
    return action_done(request, done(outcome) if callable(done) else done, redirect_to=redirect_to)
