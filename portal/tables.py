"""What the student's and the console's tables share: columns that format through
billing.formatting (so a table shows local time like every page), tie-broken sorting, paging
from the query string (by page number, or by sort key for the tables that grow to millions of
rows), the table class whose cells the portal's template draws without django-tables2's per-cell
overhead, and the sessions table both sides show."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import django_tables2 as tables
from django import forms
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.paginator import EmptyPage, Paginator
from django.db import models
from django.db.models import F, Subquery, Value
from django.template.defaultfilters import striptags
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django_tables2 import RequestConfig
from django_tables2.columns.linkcolumn import BaseLinkColumn
from django_tables2.columns.manytomanycolumn import ManyToManyColumn
from django_tables2.paginators import LazyPaginator
from django_tables2.rows import BoundRows
from django_tables2.utils import Accessor, signature

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


# The arguments a cell's render function may ask for (django_tables2.rows.BoundRow passes these).
CELL_ARGUMENTS = frozenset({"value", "record", "column", "bound_column", "bound_row", "table"})
# Functions are few (one per column class and render_FOO method); the bound only guards against
# callables made on the fly.
_ACCEPTED_ARGUMENTS = {}
ACCEPTED_ARGUMENTS_KEPT = 1000


def accepted_arguments(function):
    """django_tables2.utils.signature(function): the names it takes and its **kwargs' name, read once
    per function (a bound method by its function and boundness, so every table instance shares it)
    instead of once per cell, which is what made inspect.signature a fifth of a table's rendering."""
    try:
        key = (getattr(function, "__func__", function), hasattr(function, "__self__"))
        return _ACCEPTED_ARGUMENTS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable: read every time, as django-tables2 does
        return signature(function)
    if len(_ACCEPTED_ARGUMENTS) >= ACCEPTED_ARGUMENTS_KEPT:
        _ACCEPTED_ARGUMENTS.clear()
    _ACCEPTED_ARGUMENTS[key] = accepted = signature(function)
    return accepted


class PortalTable(tables.Table):
    """A django-tables2 table for the portal's template (django_tables2/portal_table.html), which
    draws the body from `cell_rows`: each row with its cells as (data-label, td attributes, content).
    The content is what django-tables2's BoundRow.items() gives, cell for cell; what is the same in
    every cell of a column (its label, its attributes, how its render function is called) is worked
    out once per rendering instead of once per cell."""

    @property
    def cell_rows(self):
        plans = [_ColumnPlan(self, bound_column) for bound_column in self.columns]
        for row in self.paginated_rows:
            yield row, [plan.cell(row) for plan in plans]


class _ColumnPlan:
    """How to draw one column's cells, read once per rendering. `cell` follows django-tables2's
    BoundRow.get_cell (django_tables2/rows.py): the value through the column's accessor (a field
    with choices through get_FOO_display), the column's default for an empty value, else its
    render function called with the arguments it names, then its link."""

    def __init__(self, table, bound_column):
        self.table = table
        self.bound_column = bound_column
        self.column = column = bound_column.column
        self.accessor = Accessor(bound_column.accessor)
        path, _separator, self.remainder = self.accessor.rpartition(self.accessor.SEPARATOR)
        self.path = Accessor(path)
        self.display = f"get_{self.remainder}_display"
        self.choices_by_type = {}
        self.default = bound_column.default
        self.empty_values = column.empty_values
        self.many_to_many = isinstance(column, ManyToManyColumn)
        self.rendered_without_value = isinstance(column, BaseLinkColumn) and column.text is not None
        self.render = bound_column.render
        self.link = bound_column.link
        names, catch_all = accepted_arguments(self.render)
        self.arguments = None if catch_all else names
        self.never_rendered = not catch_all and not CELL_ARGUMENTS.issuperset(names)
        # The header's text only (a header may carry markup), as `column.header|striptags` gives it.
        self.label = striptags(bound_column.header)
        self.td = None if _computed_td(table, bound_column) else bound_column.attrs["td"].as_html()

    def cell(self, row):
        bound_column = self.bound_column
        content = self._content(row, row.record)
        # What BoundRow.items() leaves for attributes computed from the cell's value and record.
        bound_column.current_value = content
        bound_column.current_record = row.record
        td = self.td if self.td is not None else bound_column.attrs["td"].as_html()
        return self.label, td, content

    def _content(self, row, record):
        value = None
        remainder = self.remainder
        penultimate = self.path.resolve(record, quiet=True)
        if isinstance(penultimate, models.Model):
            try:
                display = self._has_choices(record) and getattr(penultimate, self.display, None)
                if display:
                    value = display()
                    remainder = None
            except FieldDoesNotExist:
                pass
        if remainder:
            try:
                value = self.accessor.resolve(record)
            except Exception:
                if self.rendered_without_value:
                    return self._render(row, record)
        if value in self.empty_values or (self.many_to_many and not value.exists()):
            return self.default
        return self._render(row, record, value)

    def _has_choices(self, record):
        """Whether the accessor ends in a field with choices, for records of this type."""
        record_type = type(record)
        if record_type not in self.choices_by_type:
            field = self.accessor.get_field(record)
            self.choices_by_type[record_type] = bool(getattr(field, "choices", ()))
        return self.choices_by_type[record_type]

    def _render(self, row, record, value=None):
        arguments = {
            "value": value,
            "record": record,
            "column": self.column,
            "bound_column": self.bound_column,
            "bound_row": row,
            "table": self.table,
        }
        if self.never_rendered:
            content = None
        elif self.arguments is None:
            content = self.render(**arguments)
        else:
            content = self.render(**{name: arguments[name] for name in self.arguments})
        return self.link(content, **arguments) if self.link else content


def _computed_td(table, bound_column):
    """Whether a column's td attributes can differ from cell to cell: a callable among them (given
    the cell's record and value), or a table that names its cells' classes itself."""
    attrs = dict(table.attrs)
    attrs.update(dict(bound_column.column.attrs))
    td = attrs.get("td", attrs.get("cell", {}))
    return _has_callable(td) or type(table).get_column_class_names is not tables.Table.get_column_class_names


def _has_callable(attrs):
    return any(callable(value) or (isinstance(value, dict) and _has_callable(value)) for value in attrs.values())


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
    return _paginate(request, table, per_page=per_page, lazy=lazy)


def _paginate(request, table, *, per_page, lazy):
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


# Seek ("keyset") paging. A page's links carry the key of the row they continue from, `after=` its
# last row (Next) or `before=` its first (Previous), as "<sort value>.<id>"; a moment is written as
# microseconds since 1970 (no time zone, nothing to escape in a URL).
SEEK_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEEK_NUMBER = re.compile(r"-?[0-9]{1,19}")
SEEK_INTEGER_LIMIT = 2**63  # what every database takes as an integer parameter


@dataclass(frozen=True)
class SeekPage:
    """The page of a table paged by its sort key that the pager shows: its number (for display:
    the number of pages from the first one, as the links counted them) and its links."""

    number: int
    has_next: bool
    previous_url: str = ""
    next_url: str = ""

    @property
    def has_previous(self):
        return self.number > 1

    @property
    def has_other_pages(self):
        return self.has_previous or self.has_next


@dataclass(frozen=True)
class _SeekOrder:
    """A table's order that seek paging can follow: one not-null column, then id, the same way."""

    field: models.Field
    descending: bool

    def key_of(self, record):
        return _seek_key_text(self.field, getattr(record, self.field.attname)), record.pk

    def beyond(self, value, pk, *, greater):
        """The rows after (value, pk) in ascending order (`greater`), or before it."""
        return _RowBeyond(self.field, value, pk, greater=greater)


class _RowBeyond(models.Expression):
    """`(column, id) > (value, pk)` (or `<`): one row comparison, which the database reads as where
    to start in the (column, id) index, however many rows share the value (every Starter payment
    costs 80.00). Spelt `column >= value AND (column > value OR id > pk)`, the rows of that value
    before the key would be read one by one."""

    output_field = models.BooleanField()

    def __init__(self, field, value, pk, *, greater):
        super().__init__()
        self.operator = ">" if greater else "<"
        self.operands = [F(field.name), F("pk"), Value(value, output_field=field), Value(pk)]

    def get_source_expressions(self):
        return self.operands

    def set_source_expressions(self, expressions):
        self.operands = list(expressions)

    def as_sql(self, compiler, connection):
        sql, params = [], []
        for operand in self.operands:
            operand_sql, operand_params = compiler.compile(operand)
            sql.append(operand_sql)
            params.extend(operand_params)
        column, pk, value, key = sql
        return f"({column}, {pk}) {self.operator} ({value}, {key})", params


def table_seek(request, table, *, per_page):
    """Sort `table` from the query string and page it by its sort key: a page's Next link carries
    the key (sort value, id) of its last row and the next page starts just below it, so the 2,000th
    page costs one indexed query, as the first does, and a payment made meanwhile never moves a row
    onto the next page twice. Previous works the same way upwards.

    The page's number is for display (the pager says "Page 2000"). A page number without a key (an
    old link, a typed number) is found by position as before, reading only the index for the rows
    it skips; a key that cannot be read, or that no row follows, shows the first page. Orders seek
    paging cannot follow (not a column then id, as `stable_order` makes) are paged lazily by number.

    The rows go to `table.rows` and the pager to `table.seek_page`: the table's template draws it
    (console/_seek_table.html)."""
    RequestConfig(request, paginate=False).configure(table)
    queryset = table.data.data
    order = _seek_order(queryset)
    if order is None:
        return _paginate(request, table, per_page=per_page, lazy=True)
    fields = {"page": table.prefixed_page_field, "after": f"{table.prefix}after", "before": f"{table.prefix}before"}
    number = _page_number(request.GET.get(fields["page"]))
    after, before = request.GET.get(fields["after"]), request.GET.get(fields["before"])
    rows, has_next = [], False
    if number > 1 and (after is not None or before is not None):
        rows, has_next = _rows_beyond(queryset, order, after=after, before=before, per_page=per_page)
    elif number > 1:
        rows, has_next = _rows_at(queryset, offset=(number - 1) * per_page, per_page=per_page)
    if not rows:  # the first page; or a key, or a page number, past the end (the last page is not known)
        number = 1
        rows, has_next = _rows_at(queryset, offset=0, per_page=per_page)
    table.rows = BoundRows(data=rows, table=table, pinned_data=table.rows.pinned_data)
    table.seek_page = SeekPage(
        number=number,
        has_next=has_next,
        previous_url=_seek_url(request, fields, number - 1, before=order.key_of(rows[0]) if rows else None),
        next_url=_seek_url(request, fields, number + 1, after=order.key_of(rows[-1]) if rows else None),
    )
    return table


def _rows_beyond(queryset, order, *, after, before, per_page):
    """The page just after the key `after` (and whether another follows), or just before the key
    `before`; no rows for a key that cannot be read."""
    if after is not None and before is not None:  # not a link of ours
        return [], False
    key = _seek_key(order, after if after is not None else before)
    if key is None:
        return [], False
    if after is not None:
        rows = list(queryset.filter(order.beyond(*key, greater=not order.descending))[: per_page + 1])
        return rows[:per_page], len(rows) > per_page
    rows = list(queryset.filter(order.beyond(*key, greater=order.descending)).reverse()[:per_page])
    # Fewer than a page of rows above the key: they are the first rows, which the first page shows.
    return (rows[::-1], True) if len(rows) == per_page else ([], False)


def _rows_at(queryset, *, offset, per_page):
    """The page `offset` rows down (and whether another follows). Past the first page the rows
    skipped are found by id alone, which the database reads from an index, then the page's rows
    are fetched by id."""
    if offset:
        queryset = queryset.filter(pk__in=Subquery(queryset.values("pk")[offset : offset + per_page + 1]))
    rows = list(queryset[: per_page + 1])
    return rows[:per_page], len(rows) > per_page


def _seek_url(request, fields, number, *, after=None, before=None):
    """The query string of page `number` of the same table, filters and sort kept; the first page
    needs no key (it is the top of the table)."""
    query = request.GET.copy()
    query.pop(fields["after"], None)
    query.pop(fields["before"], None)
    query[fields["page"]] = str(max(number, 1))
    for name, key in (("after", after), ("before", before)):
        if number > 1 and key is not None:
            query[fields[name]] = f"{key[0]}.{key[1]}"
    return f"?{query.urlencode()}"


def _seek_order(queryset):
    """The order seek paging follows, when the queryset is ordered by one not-null column of its
    model then by id, both the same way (what `stable_order` makes); otherwise None."""
    query = queryset.query
    ordering = query.order_by or (query.get_meta().ordering if query.default_ordering else ())
    if not query.standard_ordering or len(ordering) != 2 or not all(isinstance(part, str) for part in ordering):
        return None
    first, second = ordering
    descending = first.startswith("-")
    if second.startswith("-") != descending or second.lstrip("-") not in ("id", "pk"):
        return None
    try:
        field = queryset.model._meta.get_field(first.lstrip("-"))
    except FieldDoesNotExist:
        return None
    if field.null or field.is_relation or not field.concrete or not isinstance(field, SEEK_FIELDS):
        return None
    return _SeekOrder(field, descending)


def _seek_key(order, text):
    """(sort value, id) from a link's key, or None when it is not a key of this order."""
    value, dot, pk = text.rpartition(".")
    if not dot or not SEEK_NUMBER.fullmatch(pk) or not 0 < int(pk) < SEEK_INTEGER_LIMIT:
        return None
    field = order.field
    if isinstance(field, models.DateTimeField):
        number = _seek_integer(value)
        try:
            value = SEEK_EPOCH + timedelta(microseconds=number) if number is not None else None
        except OverflowError:
            value = None
    elif isinstance(field, models.IntegerField):
        value = _seek_integer(value)
    elif field.choices:
        value = value if value in {str(choice) for choice, _label in field.flatchoices} else None
    elif "\x00" in value or (field.max_length and len(value) > field.max_length):
        value = None
    return None if value is None else (value, int(pk))


def _seek_integer(text):
    if SEEK_NUMBER.fullmatch(text) and abs(int(text)) < SEEK_INTEGER_LIMIT:
        return int(text)
    return None


def _seek_key_text(field, value):
    if isinstance(field, models.DateTimeField):
        return (value - SEEK_EPOCH) // timedelta(microseconds=1)
    return value


# The columns a seek key can carry: a moment, a number, a text (a status).
SEEK_FIELDS = (models.DateTimeField, models.IntegerField, models.CharField)


class UsageTable(PortalTable):
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
