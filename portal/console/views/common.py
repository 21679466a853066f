"""What every console page shares: tables that page and swap, and actions that open in a dialog."""

from django.contrib import messages
from django.core.paginator import EmptyPage, Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django_tables2 import RequestConfig
from django_tables2.paginators import LazyPaginator

PER_PAGE = 25
# Beyond this a page number is a typo (and an OFFSET the database cannot take).
MAX_PAGE = 100_000


def table_page(request, table, *, lazy=False):
    """Sort and page `table` from the query string. `lazy` pages without counting every row (for
    tables that grow to millions of rows): the pager then knows only whether a next page exists."""
    RequestConfig(request, paginate=False).configure(table)
    paginator_class = LazyPaginator if lazy else Paginator
    table.paginator = paginator_class(table.rows, PER_PAGE)
    try:
        table.page = table.paginator.get_page(_page_number(request.GET.get(table.prefixed_page_field)))
    except EmptyPage:  # past the end of a lazily paged table, whose last page is not known: the first
        table.page = table.paginator.page(1)
    return table


def _page_number(value):
    try:
        return min(max(int(value), 1), MAX_PAGE)
    except (TypeError, ValueError, OverflowError):
        return 1


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
    context = {"url": request.get_full_path(), "submit": "Save", "danger": False} | context
    template = "console/action.html#form" if request.htmx else "console/action.html"
    return render(request, template, context)


def action_done(request, message, *, redirect_to, level=messages.SUCCESS):
    """After an action: a message, then back to the page it concerns (HTMX follows with a full load,
    so every figure on it is fresh)."""
    messages.add_message(request, level, message)
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Redirect": redirect_to})
    return redirect(redirect_to)
