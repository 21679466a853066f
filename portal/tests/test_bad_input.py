"""Bad input never answers 500: every page of the console, the student portal and the Django admin,
and every form on them, answers a malformed value with a form error, 400 or 404.

The pages come from the URL resolver and the admin's registry; each page's parameters from its own
links and forms (plus the usual names and an unknown one), so a page, a filter or a form added
tomorrow is swept too. Run it on SQLite and on PostgreSQL: each fails differently."""

import logging
from dataclasses import dataclass, field
from urllib.parse import quote_plus, urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from billing.tests.builders import make_console_user, make_paid_payment, make_student, use
from conftest import console_sign_in
from portal.admin_input import SELECTION_INVALID
from portal.models import User
from portal.tests.crawl import link_parameters, page_forms
from portal.tests.routes import ids_of_every_kind, routes

pytestmark = pytest.mark.django_db

# Every malformed value the sweep sends, as it travels: percent-encoded in a query string or form body.
BAD_VALUES = {
    "a 5000-digit number": "9" * 5000,  # past Python's int() digit limit
    "a NUL byte": "%00",  # PostgreSQL refuses it in a text parameter
    "a 30-digit integer": "1" * 30,  # past any integer column (SQLite raises OverflowError)
    "non-UTF-8 percent-encoding": "%ff",
    "an empty value": "",
    "a very long string": "x" * 10_000,
}
# Read by list pages without a link naming them on every page (sort and page links need rows and
# pages), and one that nothing reads.
USUAL_PARAMETERS = {"q", "status", "page", "sort", "per_page", "id", "created_from", "created_to", "not_a_parameter"}
# Sent by scripts and polling fragments rather than by a form or link of the pages as they stand:
# the card form's SetupIntent (static/js/payments.js), the payment check's attempt, the 3-D Secure resume.
SCRIPTED_PARAMETERS = {"setup_intent", "attempt", "resume"}


@dataclass(repr=False)
class Sweep:
    """Sends every bad value to every parameter of the pages it visits, and keeps what answered 500."""

    client: object
    failures: list = field(default_factory=list)
    answered: dict = field(default_factory=dict)  # method and path -> how many bad requests were answered

    def visit(self, urls):
        """Send the bad values to every parameter of each page and to every field of its forms."""
        parameters, forms = self.discover(urls)
        self.query_pages(urls, parameters)
        self.post_forms(forms)

    def discover(self, urls):
        """GET each page once and read from its links and forms the parameters each page takes
        ({path: names}) and the forms that post ({(action, names): Form})."""
        pages = {url: self.client.get(url) for url in urls}
        parameters, forms = {}, {}
        for url, response in pages.items():
            self._keep("GET", url, "", "a plain visit", response)
            if "html" not in response.get("Content-Type", ""):
                continue
            html = response.content.decode()
            parameters.setdefault(_path(url), set()).update(link_parameters(html, url))
            for form in page_forms(html, url):
                if form.method == "GET":
                    for target in {_path(form.action), *_linked_downloads(html, url, pages)}:
                        parameters.setdefault(target, set()).update(form.names)
                elif not _signs_out(form.action):
                    forms.setdefault((form.action, frozenset(form.names)), form)
        return parameters, forms

    def query_pages(self, urls, parameters):
        for url in urls:
            self.query(url, parameters.get(_path(url), set()) | USUAL_PARAMETERS)

    def post_forms(self, forms):
        for form in forms.values():
            self.post_form(form)

    def query(self, url, names, method="GET"):
        for name in sorted(_with_table_paging(names)):
            for label, bad in BAD_VALUES.items():
                target = f"{_path(url)}?{quote_plus(name)}={bad}"
                self._keep(method, target, name, label, getattr(self.client, method.lower())(target))

    def post_form(self, form):
        for name in sorted(form.names | {"not_a_parameter"}):
            for label, bad in BAD_VALUES.items():
                response = self.client.post(
                    form.action, form.body_with(name, bad), content_type="application/x-www-form-urlencoded"
                )
                self._keep("POST", form.action, name, label, response)

    def post_bare(self, url, names):
        for name in sorted(names):
            for label, bad in BAD_VALUES.items():
                body = f"{quote_plus(name)}={bad}"
                response = self.client.post(url, body, content_type="application/x-www-form-urlencoded")
                self._keep("POST", url, name, label, response)

    def _keep(self, method, url, name, label, response):
        key = f"{method} {_path(url).split('?')[0]}"
        self.answered[key] = self.answered.get(key, 0) + 1
        if response.status_code >= 500:
            error = response.exc_info[1] if response.exc_info else ""
            self.failures.append(f"{key} {name}={label}: {response.status_code} {error!r:.200}")


def _path(url):
    return url.split("#")[0]


def _signs_out(action):
    return urlsplit(action).path in {reverse("account_logout"), reverse("admin:logout")}


def _linked_downloads(html, url, pages):
    """Files (the CSV export) that a page links to take the filters of the page's own form."""
    return {
        target
        for target, response in pages.items()
        if "html" not in response.get("Content-Type", "") and urlsplit(target).path in html
    }


def _with_table_paging(names):
    """A table's sort parameter ("usage-sort") comes with its page parameters, shown only past a page."""
    prefixes = {name.removesuffix("sort") for name in names if name.endswith("sort")}
    return names | {f"{prefix}{suffix}" for prefix in prefixes for suffix in ("page", "per_page")}


def route_urls(namespace, ids):
    return [route.url(ids) for route in routes(namespace)]


def sweep_path_ids(sweep, namespace, ids):
    """Ids past any integer column, in every route's path."""
    for route in routes(namespace):
        for name in route.ids:
            for label, bad in BAD_VALUES.items():
                if bad.isdigit():
                    url = route.url(ids | {name: bad})
                    sweep._keep("GET", url, name, label, sweep.client.get(url))
                    sweep._keep("POST", url, name, label, sweep.client.post(url))


def assert_no_500(sweep):
    assert not sweep.failures, f"{len(sweep.failures)} answers of 500:\n" + "\n".join(sweep.failures[:40])


@pytest.fixture
def sweeping(client, caplog, settings):
    client.raise_request_exception = False  # every answer is collected, so one run names every 500
    caplog.set_level(logging.ERROR, logger="django.request")  # not a warning per 404 of a 5000-digit URL
    # Thousands of requests from one user: the rate limits (tested on their own) would answer most.
    settings.PORTAL_RATE_LIMITS = {
        group: dict.fromkeys(limits, "100000/m") for group, limits in settings.PORTAL_RATE_LIMITS.items()
    }
    return Sweep(client)


@pytest.fixture
def paid(localstripe):
    paid = make_paid_payment(localstripe, account=make_student("payer@example.com"))
    use(paid.account, 30)
    return paid


@pytest.fixture
def ids(paid):
    return ids_of_every_kind(paid)


@pytest.fixture
def superuser(db):
    """Finance, and a superuser: every console page and every admin page open to them."""
    user = make_console_user("root@example.com", role="Finance")
    user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def superuser_client(client, superuser):
    return console_sign_in(client, superuser)


def admin_pages(sweeper):
    """Every admin page staff reach: the index, each app, and for each registered model its list, add
    form, and the change form and history of a row (of a user other than the one sweeping, whose
    password and rights stay as they are)."""
    urls = [reverse("admin:index"), reverse("admin:password_change")]
    for model in admin.site._registry:
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls += [reverse("admin:app_list", args=[model._meta.app_label]), reverse(f"{name}_changelist")]
        urls.append(reverse(f"{name}_add"))
        rows = model._default_manager.order_by("pk")
        first = (rows.exclude(pk=sweeper.pk) if model is type(sweeper) else rows).first()
        if first is not None:
            urls += [reverse(f"{name}_change", args=[first.pk]), reverse(f"{name}_history", args=[first.pk])]
            if model is type(sweeper):
                urls.append(reverse("admin:auth_user_password_change", args=[first.pk]))
    return sorted(set(urls))


def test_bad_values_never_answer_500_on_console_pages_and_exports(sweeping, ids, superuser):
    console_sign_in(sweeping.client, superuser)
    every_console_page = route_urls("console", ids)

    sweeping.query_pages(every_console_page, sweeping.discover(every_console_page)[0])
    sweep_path_ids(sweeping, "console", ids)

    assert_no_500(sweeping)
    assert {f"GET {reverse('console:payments')}", f"GET {reverse('console:payments_export')}"} <= set(sweeping.answered)


def test_bad_values_never_answer_500_on_console_forms(sweeping, ids, superuser):
    console_sign_in(sweeping.client, superuser)
    every_console_page = route_urls("console", ids)

    sweeping.post_forms(sweeping.discover(every_console_page)[1])
    for url in every_console_page:
        sweeping.post_bare(url, SCRIPTED_PARAMETERS | {"not_a_parameter"})

    assert_no_500(sweeping)
    forms_posted = {
        reverse(name, args=[ids["account_id"]]) for name in ("console:hours_adjust", "console:session_create")
    }
    forms_posted.add(reverse("console:refund_create", args=[ids["payment_id"]]))
    assert {f"POST {url}" for url in forms_posted} <= set(sweeping.answered)


def test_bad_values_never_answer_500_on_student_pages_and_forms(sweeping, paid, ids):
    sweeping.client.force_login(paid.account.user)
    every_student_page = route_urls("student", ids)

    sweeping.visit(every_student_page)
    for url in every_student_page:
        sweeping.post_bare(url, SCRIPTED_PARAMETERS | {"not_a_parameter"})
        sweeping.query(url, SCRIPTED_PARAMETERS, method="POST")
    sweep_path_ids(sweeping, "student", ids)

    assert_no_500(sweeping)
    assert f"POST {reverse('student:pay')}" in sweeping.answered
    assert f"POST {reverse('student:card_save')}" in sweeping.answered


def test_bad_values_never_answer_500_in_the_admin(sweeping, paid, superuser):
    console_sign_in(sweeping.client, superuser)

    sweeping.visit(admin_pages(superuser))

    assert_no_500(sweeping)
    assert f"POST {reverse('admin:portal_user_change', args=[paid.account.user.pk])}" in sweeping.answered
    assert f"POST {reverse('admin:auth_group_add')}" in sweeping.answered


class TestWhatTheSweepFound:
    """Each bad value the sweep first found answering 500, and the clear answer it gets now."""

    def test_a_payment_search_longer_than_an_email_address_is_a_form_error(self, superuser_client):
        response = superuser_client.get(reverse("console:payments"), {"q": "9" * 5000})

        assert response.status_code == 200
        assert "Search: Ensure this value has at most 254 characters (it has 5000)." in response.content.decode()

    def test_a_student_search_with_a_nul_byte_is_a_form_error(self, superuser_client, student):
        response = superuser_client.get(reverse("console:students"), {"q": "ana\x00"})

        assert response.status_code == 200
        assert "Null characters are not allowed." in response.content.decode()

    def test_a_student_search_still_finds_by_email(self, superuser_client, student):
        response = superuser_client.get(reverse("console:students"), {"q": " ANA@example "})

        assert "ana@example.com" in response.content.decode()

    def test_the_admin_refuses_a_group_id_past_the_integer_range_with_a_form_error(self, superuser_client, student):
        url = reverse("admin:portal_user_change", args=[student.user.pk])

        response = superuser_client.post(url, {"email": student.user.email, "groups": "1" * 30})

        assert response.status_code == 200
        assert f"Select a valid choice. {'1' * 30} is not one of the available choices." in response.content.decode()
        assert not student.user.groups.exists()

    def test_the_admin_refuses_a_permission_id_past_the_integer_range_with_a_form_error(self, superuser_client):
        response = superuser_client.post(reverse("admin:auth_group_add"), {"name": "Tutors", "permissions": "1" * 30})

        assert response.status_code == 200
        assert "is not one of the available choices." in response.content.decode()
        assert not Group.objects.filter(name="Tutors").exists()

    @pytest.mark.parametrize("selected", ["not-an-id", "1" * 30])
    def test_an_admin_action_on_rows_that_are_not_ids_is_refused_with_a_message(
        self, superuser_client, student, selected
    ):
        url = reverse("admin:portal_user_changelist")

        response = superuser_client.post(url, {"action": "delete_selected", "_selected_action": selected}, follow=True)

        assert response.status_code == 200
        assert SELECTION_INVALID in response.content.decode()
        assert User.objects.filter(pk=student.user.pk).exists()

    def test_an_admin_list_filter_with_a_nul_byte_goes_back_to_the_list(self, superuser_client):
        url = reverse("admin:billing_ledgerentry_changelist")

        response = superuser_client.get(url, {"kind__exact": "\x00"})

        assert response.status_code == 302
        assert response["Location"] == f"{url}?e=1"

    @pytest.mark.parametrize(
        ("changelist", "lookup", "value"),
        [
            ("admin:portal_user_changelist", "id__in", f"1,{'1' * 30}"),
            ("admin:portal_user_changelist", "groups__id__in", "1" * 30),
            ("admin:portal_user_changelist", "groups__in", "1" * 30),
            ("admin:portal_user_changelist", "id__gt", "-" + "1" * 30),
            ("admin:billing_lot_changelist", "account__id__in", "1" * 30),
            ("admin:billing_lot_changelist", "account__user__id__range", f"1,{'1' * 30}"),
            ("admin:billing_ledgerentry_changelist", "lot__id__in", "9" * 5000),
            ("admin:portal_user_changelist", "pk__in", f"1,{'1' * 30}"),
            ("admin:portal_user_changelist", "groups__pk__in", "1" * 30),
            ("admin:portal_user_changelist", "date_joined__year", "1" * 30),
            ("admin:portal_user_changelist", "last_login__year__in", f"2026,{'1' * 30}"),
            ("admin:portal_user_changelist", "o", "1" * 30),
        ],
    )
    def test_an_admin_list_lookup_past_the_integer_range_goes_back_to_the_list(
        self, superuser_client, changelist, lookup, value
    ):
        url = reverse(changelist)

        response = superuser_client.get(url, {lookup: value})

        assert response.status_code == 302, response.status_code
        assert response["Location"] == f"{url}?e=1"

    def test_an_admin_list_lookup_within_range_still_filters(self, superuser_client, student):
        response = superuser_client.get(reverse("admin:portal_user_changelist"), {"id__in": f"{student.user.pk},7"})

        assert response.status_code == 200
        assert student.user.email in response.content.decode()
