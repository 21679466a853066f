"""Packages across students: extend the expiry of many at once, after a preview."""

from functools import partial

from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_http_methods

from billing import hours_actions
from billing.formatting import hours_text
from portal.console.access import console_view
from portal.console.forms import BulkExtendForm
from portal.console.views.common import keyed_action
from portal.ratelimits import client_ip


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def lots_extend(request):
    """Two steps: the selection and its preview (how many packages, students and hours), then the
    confirmation, which carries the number of packages previewed: the service refuses if the
    selection no longer holds that many (a purchase or an expiry in between). Finance only, like
    every extension: it changes what was sold."""
    form = BulkExtendForm(request.POST or None)
    context = {"form": form}
    if request.method == "POST" and "edit" not in request.POST and form.is_valid():
        data = form.cleaned_data
        selection = {"plan": data["plan"], "expires_from": data["expires_from"], "expires_to": data["expires_to"]}
        if "confirm" in request.POST and data["expected_lots"] is not None:
            act = partial(
                hours_actions.lots_extend_bulk,
                **selection,
                days=data["days"],
                reason=data["reason"],
                actor=request.user,
                key=data["key"],
                expected_lots=data["expected_lots"],
                ip_address=client_ip(request),
            )
            if done := keyed_action(
                request, form, act, done=_extended_text, redirect_to=reverse("console:lots_extend")
            ):
                return done
        else:
            preview = hours_actions.lots_extend_preview(**selection)
            confirming = request.POST.copy()
            confirming["expected_lots"] = preview.lots
            context = {"form": BulkExtendForm(confirming), "preview": preview}
    template = "console/lots_extend.html#step" if request.htmx else "console/lots_extend.html"
    return render(request, template, context)


def _extended_text(extended):
    return gettext("%(packages)s of %(students)s extended (%(hours)s unused).") % {
        "packages": ngettext("%(count)d package", "%(count)d packages", extended.lots) % {"count": extended.lots},
        "students": ngettext("%(count)d student", "%(count)d students", extended.accounts)
        % {"count": extended.accounts},
        "hours": hours_text(extended.minutes),
    }
