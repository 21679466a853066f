"""Disputes: the table by status and due date, and a dispute's evidence, submission or acceptance."""

from functools import partial

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from alerts.selectors import messages_about_payment
from billing.disputes import evidence
from billing.errors import BillingError
from billing.models import Dispute
from billing.reports import payment_timeline
from portal.console.access import console_view, is_finance
from portal.console.filters import DisputeFilter
from portal.console.forms import EvidenceForm
from portal.console.tables import DisputeTable
from portal.console.views.common import action_done, list_page, reason_action, table_page
from portal.live import live_page
from portal.ratelimits import client_ip


@console_view
@require_GET
@live_page
def dispute_list(request):
    found = DisputeFilter(request.GET, queryset=Dispute.objects.select_related("payment__account__user"))
    table = table_page(request, DisputeTable(found.qs))
    return list_page(request, title=gettext("Disputes"), table=table, filterset=found)


@console_view(finance={"POST"})
@require_http_methods(["GET", "POST"])
def dispute_detail(request, dispute_id):
    """The dispute, its payment's timeline and the evidence form. Saving a draft and submitting are
    Finance actions; Support sees the evidence read-only."""
    dispute = get_object_or_404(Dispute.objects.select_related("payment__account__user", "payment__lot"), pk=dispute_id)
    editable = is_finance(request.user) and not (dispute.closed or dispute.evidence_submitted_at)
    form = EvidenceForm(request.POST or None, initial=_prefill(dispute))
    if request.method == "POST" and form.is_valid():
        submit = "submit" in request.POST
        action = evidence.dispute_evidence_submit if submit else evidence.dispute_evidence_save
        # Only the fields posted: a field the form did not send keeps its saved text.
        posted = {name: value for name, value in form.cleaned_data.items() if name in request.POST}
        try:
            action(dispute=dispute, evidence=posted, actor=request.user, ip_address=client_ip(request))
        except BillingError as refused:
            form.add_error(None, str(refused))
        else:
            done = gettext("Evidence submitted to Stripe.") if submit else gettext("Draft saved.")
            return action_done(request, done, redirect_to=reverse("console:dispute", args=[dispute.pk]))
    context = {
        "dispute": dispute,
        "payment": dispute.payment,
        "form": form,
        "editable": editable,
        "acceptable": not dispute.closed and dispute.status in Dispute.AWAITING_RESPONSE,
        "timeline": payment_timeline(payment=dispute.payment),
    }
    return render(request, "console/dispute_detail.html", context)


@console_view(finance=True)
@require_http_methods(["GET", "POST"])
def dispute_accept(request, dispute_id):
    dispute = get_object_or_404(Dispute.objects.select_related("payment__account__user"), pk=dispute_id)
    return reason_action(
        request,
        partial(evidence.dispute_accept, dispute=dispute),
        done=gettext("Dispute accepted: it is closed as lost."),
        redirect_to=reverse("console:dispute", args=[dispute.pk]),
        texts={
            "title": gettext("Accept dispute %(dispute)s") % {"dispute": dispute.stripe_dispute_id},
            "intro": gettext(
                "Accepting closes the dispute as lost: the money stays with the card holder and the held hours "
                "are removed for good. This cannot be undone."
            ),
            "submit": gettext("Accept the dispute"),
            "danger": True,
        },
    )


def _prefill(dispute):
    return evidence.dispute_evidence_prefill(dispute=dispute, messages=messages_about_payment(payment=dispute.payment))
