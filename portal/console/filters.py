"""The console's table filters (django-filter). Amounts are typed in currency units, stored in cents."""

from decimal import Decimal

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models import Account, AuditEntry, Dispute, FraudFlag, Payment, Plan, Refund, Subscription, WebhookEvent

DATE = forms.DateInput(attrs={"type": "date"})
SEARCH = forms.TextInput(attrs={"type": "search"})
# The longest text a filter takes: an email address's limit. It also bounds the digits a search
# turns into an id (int() refuses strings past 4,300 digits).
TEXT_MAX_CHARS = 254
# A name search matches each of its first few words in the first or the last name ("ana lopez").
NAME_WORDS = 4


def cents(value):
    return int((value * 100).to_integral_value())


def student_match(value, *, user="account__user"):
    """A search by student: the email contains `value`, or each of its first words is in the first
    or the last name ("ana lopez"). `user` is the path from the searched rows to the student's user."""
    value = value.strip()
    words = value.split()[:NAME_WORDS]
    by_name = Q()
    for word in words:
        by_name &= Q(**{f"{user}__first_name__icontains": word}) | Q(**{f"{user}__last_name__icontains": word})
    return Q(**{f"{user}__email__icontains": value}) | (by_name if words else Q(pk__in=[]))


def student_search_filter():
    """The `q` filter of the lists searched by student (disputes, fraud flags, refunds)."""
    return django_filters.CharFilter(
        method="search",
        label=_("Search"),
        help_text=_("Student's email or name"),
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Student's email or name")}),
        max_length=TEXT_MAX_CHARS,
    )


class PaymentFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label=_("Search"),
        help_text=_("Email, payment number or pi_… id"),
        widget=SEARCH,
        max_length=TEXT_MAX_CHARS,
    )
    # distinct=False: a status is a column of the row itself; DISTINCT would only cost a sort.
    status = django_filters.MultipleChoiceFilter(
        label=_("Status"), choices=Payment.Status.choices, widget=forms.CheckboxSelectMultiple, distinct=False
    )
    failure_code = django_filters.CharFilter(label=_("Decline code"), max_length=TEXT_MAX_CHARS)
    created_from = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", label=_("From"), widget=DATE
    )
    created_to = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte", label=_("To"), widget=DATE)
    amount_min = django_filters.NumberFilter(method="amount_at_least", label=_("Amount from"), min_value=Decimal(0))
    amount_max = django_filters.NumberFilter(method="amount_at_most", label=_("Amount to"), min_value=Decimal(0))

    class Meta:
        model = Payment
        fields = []

    def search(self, queryset, name, value):
        value = value.strip()
        if value.startswith("pi_"):
            return queryset.filter(stripe_payment_intent_id=value)
        if value.isascii() and value.isdigit():
            return queryset.filter(Q(pk=int(value)) | Q(account__user__email__icontains=value))
        return queryset.filter(account__user__email__icontains=value)

    def amount_at_least(self, queryset, name, value):
        return queryset.filter(amount_cents__gte=cents(value))

    def amount_at_most(self, queryset, name, value):
        return queryset.filter(amount_cents__lte=cents(value))


class StudentFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search", label=_("Email, name or Stripe customer id"), widget=SEARCH, max_length=TEXT_MAX_CHARS
    )

    class Meta:
        model = Account
        fields = []

    def search(self, queryset, name, value):
        return queryset.filter(student_match(value, user="user") | Q(stripe_customer_id=value.strip()))


class SubscriptionFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label=_("Search"),
        help_text=_("Student's email or name, or sub_… id"),
        widget=SEARCH,
        max_length=TEXT_MAX_CHARS,
    )
    status = django_filters.MultipleChoiceFilter(
        label=_("Status"), choices=Subscription.Status.choices, widget=forms.CheckboxSelectMultiple, distinct=False
    )
    cancel_at_period_end = django_filters.BooleanFilter(
        label=_("Cancels at period end"),
        widget=forms.Select(choices=[("", _("Either")), ("true", _("Yes")), ("false", _("No"))]),
    )
    plan = django_filters.ModelChoiceFilter(
        queryset=Plan.objects.filter(kind=Plan.Kind.SUBSCRIPTION).order_by("sort_order", "name"),
        label=_("Plan"),
        empty_label=_("Any plan"),
    )

    class Meta:
        model = Subscription
        fields = []

    def search(self, queryset, name, value):
        value = value.strip()
        if value.startswith("sub_"):
            return queryset.filter(stripe_subscription_id=value)
        return queryset.filter(student_match(value))


class DisputeFilter(django_filters.FilterSet):
    q = student_search_filter()
    status = django_filters.ChoiceFilter(label=_("Status"), choices=Dispute.Status.choices, empty_label=_("Any status"))
    state = django_filters.ChoiceFilter(
        label=_("Open or closed"),
        choices=[("open", pgettext_lazy("disputes", "Open")), ("closed", pgettext_lazy("disputes", "Closed"))],
        method="by_state",
        empty_label=_("Open and closed"),
    )

    class Meta:
        model = Dispute
        fields = []

    def by_state(self, queryset, name, value):
        return queryset.filter(closed=value == "closed")

    def search(self, queryset, name, value):
        return queryset.filter(student_match(value, user="payment__account__user"))


class RefundFilter(django_filters.FilterSet):
    q = student_search_filter()
    status = django_filters.ChoiceFilter(label=_("Status"), choices=Refund.Status.choices, empty_label=_("Any status"))

    class Meta:
        model = Refund
        fields = []

    def search(self, queryset, name, value):
        return queryset.filter(student_match(value, user="payment__account__user"))


class FraudFlagFilter(django_filters.FilterSet):
    q = student_search_filter()
    status = django_filters.ChoiceFilter(
        label=_("Status"), choices=FraudFlag.Status.choices, empty_label=_("Any status")
    )
    rule = django_filters.ChoiceFilter(label=_("Rule"), choices=FraudFlag.Rule.choices, empty_label=_("Any rule"))

    class Meta:
        model = FraudFlag
        fields = []

    def search(self, queryset, name, value):
        return queryset.filter(student_match(value))


class WebhookEventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(
        lookup_expr="startswith", label=_("Type"), help_text=_("e.g. charge.dispute"), max_length=TEXT_MAX_CHARS
    )
    status = django_filters.MultipleChoiceFilter(
        label=_("Status"), distinct=False, choices=WebhookEvent.Status.choices, widget=forms.CheckboxSelectMultiple
    )
    received_from = django_filters.DateFilter(
        field_name="received_at", lookup_expr="date__gte", label=_("From"), widget=DATE
    )
    received_to = django_filters.DateFilter(
        field_name="received_at", lookup_expr="date__lte", label=_("To"), widget=DATE
    )

    class Meta:
        model = WebhookEvent
        fields = []


class AuditFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(
        field_name="actor_email", lookup_expr="icontains", label=_("Staff email"), max_length=TEXT_MAX_CHARS
    )
    # Audit codes ("refund", "payment 42") are identifiers, the same in every language.
    action = django_filters.CharFilter(
        lookup_expr="startswith", label=_("Action"), help_text=_("e.g. refund"), max_length=TEXT_MAX_CHARS
    )
    target = django_filters.CharFilter(
        method="target_search", label=_("Target"), help_text=_("e.g. payment 42"), max_length=TEXT_MAX_CHARS
    )
    created_from = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", label=_("From"), widget=DATE
    )
    created_to = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte", label=_("To"), widget=DATE)

    class Meta:
        model = AuditEntry
        fields = []

    def target_search(self, queryset, name, value):
        kind, _, identifier = value.strip().partition(" ")
        if identifier:
            return queryset.filter(target_type=kind.lower(), target_id=identifier.strip())
        return queryset.filter(target_label__icontains=value.strip())
