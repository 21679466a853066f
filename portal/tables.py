"""What the student's and the console's tables share: columns that format through
billing.formatting (so a table shows local time like every page), tie-broken sorting, paging
from the query string, and the sessions table both sides show."""

import django_tables2 as tables
from django import forms
from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage, Paginator
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django_tables2 import RequestConfig
from django_tables2.paginators import LazyPaginator

from billing.formatting import date_text, datetime_text, duration_text
from billing.models import Usage

NUMERIC = {"td": {"class": "num"}, "th": {"class": "num"}}
# Beyond this a page number is a typo (and an OFFSET the database cannot take).
MAX_PAGE = 100_000
PAGE_NUMBER = forms.IntegerField(min_value=1)
VOIDED = _("Voided")
NOT_COUNTED = _("not counted")


def _visually_hidden(text):
    return format_html('<span class="visually-hidden">{}</span>', text)


# A column header for screen readers only (a column of buttons), in the language of the request:
# `verbose_name=visually_hidden(_("Actions"))`. The phone layout's data-label keeps its text.
visually_hidden = lazy(_visually_hidden, SafeString)


class DayColumn(tables.Column):
    """A date (of a datetime, in local time): 1 Dec 2026."""

    def render(self, value):
        return date_text(value)


class WhenColumn(tables.Column):
    """A moment in local time: 1 Dec 2026, 19:16 (with `seconds`, 19:16:05)."""

    def __init__(self, *args, seconds=False, **kwargs):
        self.seconds = seconds
        super().__init__(*args, **kwargs)

    def render(self, value):
        return datetime_text(value, seconds=self.seconds)


def stable_order(field):
    """An order_FOO method that breaks ties by id, so that paging through equal values (many
    sessions of 60 minutes) never repeats or skips a row."""

    def order(self, queryset, is_descending):
        sign = "-" if is_descending else ""
        return queryset.order_by(f"{sign}{field}", f"{sign}id"), True

    return order


def table_paginate(request, table, *, per_page, lazy=False):
    """Sort `table` from the query string and page it with a fixed size (the query string never
    chooses it); a page number that is not a page falls back to the first or the last one. `lazy`
    pages without counting every row (tables that grow to millions of rows): the pager then knows
    only whether a next page exists."""
    RequestConfig(request, paginate=False).configure(table)
    table.paginator = (LazyPaginator if lazy else Paginator)(table.rows, per_page)
    try:
        table.page = table.paginator.get_page(_page_number(request.GET.get(table.prefixed_page_field)))
    except EmptyPage:  # past the end of a lazily paged table, whose last page is not known: the first
        table.page = table.paginator.page(1)
    return table


def _page_number(value):
    try:
        return min(PAGE_NUMBER.clean(value), MAX_PAGE)
    except ValidationError:
        return 1


class UsageTable(tables.Table):
    """A student's sessions, newest first; a voided one stays, marked with its reason and its
    minutes struck through."""

    occurred_at = WhenColumn(verbose_name=_("Date"))
    subject = tables.Column(verbose_name=_("Subject"))
    tutor = tables.Column(verbose_name=_("Tutor"))
    minutes = tables.Column(verbose_name=_("Duration"), attrs=NUMERIC)

    class Meta:
        model = Usage
        fields = ["occurred_at", "subject", "tutor", "minutes"]
        order_by = "-occurred_at"
        empty_text = _("No sessions yet. Your tutoring sessions will be listed here.")
        attrs = {"class": "data-table"}
        row_attrs = {"class": lambda record: "is-voided" if record.voided_at else ""}

    caption = _("Your tutoring sessions")

    order_occurred_at = stable_order("occurred_at")
    order_subject = stable_order("subject")
    order_tutor = stable_order("tutor")
    order_minutes = stable_order("minutes")

    def render_subject(self, value, record):
        if record.voided_at is None:
            return value
        # A voided session stays listed (both histories keep it), marked in words, not colour only.
        return format_html(
            '{} <span class="badge badge-muted">{}</span><br><span class="small muted">{}</span>',
            value,
            VOIDED,
            record.void_reason,
        )

    def render_minutes(self, value, record):
        if record.voided_at is None:
            return duration_text(value)
        return format_html('<s>{}</s><br><span class="small">{}</span>', duration_text(value), NOT_COUNTED)
