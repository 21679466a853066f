"""Accounting exports, for Finance only: a period's monthly summary on the page, and each export of
the period (billing.accounting) as a CSV streamed row by row, or all of them in one spreadsheet.
Every download is audited."""

from functools import wraps

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from billing.accounting import (
    ExportKind,
    accounting_export,
    accounting_summary,
    accounting_workbook,
    export_filename,
)
from billing.formatting import date_text, hours_text, iso_date, money_text, period_text
from portal.console.access import console_view
from portal.console.forms import AccountingPeriodForm
from portal.downloads import csv_file, workbook_file
from portal.ratelimits import client_ip

# The summary's lines on the page, one column per month: (label, figure, reads as money or as hours).
MONEY, HOURS = "money", "hours"
SUMMARY_LINES = [
    (_("Gross sales"), "gross_sales_cents", MONEY),
    (_("Refunds"), "refunds_cents", MONEY),
    (_("Disputes lost"), "disputes_lost_cents", MONEY),
    (_("Net"), "net_cents", MONEY),
    (_("Hours at the start"), "opening_minutes", HOURS),
    (_("Hours sold"), "sold_minutes", HOURS),
    (_("Hours granted"), "granted_minutes", HOURS),
    (_("Hours used"), "used_minutes", HOURS),
    (_("Hours expired"), "expired_minutes", HOURS),
    (_("Hours taken back by refunds"), "refunded_minutes", HOURS),
    (_("Hours held for disputes"), "disputed_minutes", HOURS),
    (_("Hours adjusted by staff"), "adjusted_minutes", HOURS),
    (_("Hours outstanding at the end"), "outstanding_minutes", HOURS),
    (_("Deferred revenue at the end"), "deferred_cents", MONEY),
]
DESCRIPTIONS = {
    ExportKind.PAYMENTS: _("The sales: every payment made in the period that succeeded, with its receipt."),
    ExportKind.REFUNDS: _("Refunds asked for in the period that have not failed, with their credit notes."),
    ExportKind.RECEIPTS: _("Receipts issued in the period, in number order, as issued."),
    ExportKind.CREDIT_NOTES: _("Credit notes and their cancellations issued in the period, in number order."),
    ExportKind.DISPUTES: _("Disputes opened or closed in the period."),
    ExportKind.LEDGER: _("Every movement of hours in the period, with its package, session and receipt."),
    ExportKind.DEFERRED: _("Every package with hours left at the end of the period, and what they are worth."),
    ExportKind.SUMMARY: _("The summary above, one row a month."),
}


def _of_a_period(view):
    """Finance's GET views of the period the query asks for (AccountingPeriodForm), called with it as
    `period`; a period that is not one answers the page again, with why (400), and exports nothing."""

    @console_view(finance=True)
    @require_GET
    @wraps(view)
    def with_period(request, *args, **kwargs):
        form = AccountingPeriodForm(request.GET)
        if not form.is_valid():
            return _page(request, form, status=400)
        return view(request, *args, period=form.cleaned_data["period"], **kwargs)

    return with_period


@_of_a_period
def export_page(request, period):
    return _page(request, AccountingPeriodForm.showing(period), period=period)


@_of_a_period
def export_csv(request, kind, period):
    """One export of the period as CSV."""
    if kind not in ExportKind.values:
        raise Http404("No such export.")
    rows = accounting_export(kind=ExportKind(kind), period=period, actor=request.user, ip_address=client_ip(request))
    return csv_file(rows, filename=export_filename(kind, period, "csv"))


@_of_a_period
def export_workbook(request, period):
    """Every export of the period in one spreadsheet, a sheet each, the summary first."""
    sheets = accounting_workbook(period=period, actor=request.user, ip_address=client_ip(request))
    return workbook_file(sheets, filename=export_filename("accounting", period, "xlsx"))


def _page(request, form, *, period=None, status=200):
    context = {"form": form, "time_zone": settings.TIME_ZONE}
    if period is not None:
        context |= {"period_label": _period_label(period), **_summary_table(accounting_summary(period=period))}
        query = urlencode({"start": iso_date(period.start), "end": iso_date(period.last_day)})
        context |= {"downloads": _downloads(query), "workbook_url": f"{reverse('console:export_workbook')}?{query}"}
    return render(request, "console/exports.html", context, status=status)


def _summary_table(summary):
    """The summary as the page's table: a column per month (and the total of a longer period), a line
    per figure, each cell its column's label (for the phone layout) and its text."""
    months = list(summary.months)
    columns = months + [summary.total] if len(months) > 1 else months
    labels = [_period_label(month) for month in months] + [gettext("Total")] * (len(columns) - len(months))
    lines = [
        {
            "label": label,
            "cells": [
                (column_label, _figure_text(unit, getattr(column, figure), column.currency))
                for column_label, column in zip(labels, columns, strict=True)
            ],
        }
        for label, figure, unit in SUMMARY_LINES
    ]
    return {"columns": labels, "lines": lines}


def _figure_text(unit, value, currency):
    return money_text(value, currency) if unit == MONEY else hours_text(value)


def _period_label(period):
    """March 2026 for a calendar month, else its first and last day."""
    if period.is_calendar_month:
        return period_text(period.start, "month")
    return f"{date_text(period.start)} – {date_text(period.last_day)}"


def _downloads(query):
    return [
        {
            "label": kind.label,
            "description": DESCRIPTIONS[kind],
            "url": f"{reverse('console:export_csv', args=[kind.value])}?{query}",
        }
        for kind in ExportKind
    ]
