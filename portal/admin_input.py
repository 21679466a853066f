"""The Django admin answers bad input as every other page does, with a message or a form error: an id
past what the database's integer columns hold never reaches a query (SQLite raises OverflowError on
it), an action runs only on selected rows that are ids, and a NUL character (which PostgreSQL refuses
in text) never reaches a list's filters or search. PortalAdminSite mixes this into every ModelAdmin
it registers: ours, Django's and allauth's."""

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.utils.translation import gettext, gettext_noop

# English here, for the tests to find; translated when shown.
SELECTION_INVALID = gettext_noop("The selected rows were not understood. Select them again.")
# More digits than any 64-bit integer has: refused before int() (Python refuses past 4,300 digits).
WIDEST_INTEGER_DIGITS = 19


class InRangeModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """A multiple choice of rows that refuses, before any query, a number past the range of the
    integer column the choices are looked up in (Django's own check covers single lookups only)."""

    def clean(self, value):
        if isinstance(value, (list, tuple)):
            for choice in value:
                self._refuse_out_of_range(choice)
        return super().clean(value)

    def _refuse_out_of_range(self, choice):
        column = self.queryset.model._meta.get_field(self.to_field_name) if self.to_field_name else None
        column = column or self.queryset.model._meta.pk
        while column.is_relation:  # a primary key that is also a foreign key holds the other table's ids
            column = column.target_field
        if not isinstance(column, models.IntegerField):
            return
        try:
            number = int(str(choice))
        except ValueError:
            return  # not a number: the field's own check refuses it
        low, high = connections[self.queryset.db].ops.integer_field_range(column.get_internal_type())
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": choice}
            )


class BadInputRefusedAdmin:
    """Mixed into a ModelAdmin (see bad_input_refused)."""

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("form_class", InRangeModelMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_changelist_instance(self, request):
        # The admin's own answer to lookups it cannot run: back to the list, with a notice.
        if any("\x00" in value for _, values in request.GET.lists() for value in values):
            raise IncorrectLookupParameters("A NUL character in the list's parameters.")
        for name, values in request.GET.lists():
            if _integer_lookup_out_of_range(self.model, name, values):
                raise IncorrectLookupParameters(f"{name}: a number past what the database holds.")
        return super().get_changelist_instance(request)

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        try:
            InRangeModelMultipleChoiceField(queryset, required=False).clean(selected)
        except ValidationError:
            self.message_user(request, gettext(SELECTION_INVALID), messages.WARNING)
            return None  # the admin shows the list again, with the message
        return super().response_action(request, queryset)


def bad_input_refused(admin_class):
    """`admin_class` with BadInputRefusedAdmin mixed in."""
    if issubclass(admin_class, BadInputRefusedAdmin):
        return admin_class
    return type(admin_class.__name__, (BadInputRefusedAdmin, admin_class), {"__module__": admin_class.__module__})


def _integer_lookup_out_of_range(model, name, values):
    """Whether a list parameter holds a whole number past what any integer column holds, in any of
    its comma-separated parts: `id__in=1,<30 digits>`, `groups__pk=...`, `date_joined__year=...`.
    Whatever field or transform it names, such a number can only overflow the query (SQLite raises
    OverflowError), never match. The search box (`q`) compares text, and is left alone."""
    if name == SEARCH_VAR:
        return False
    low, high = connections[model.objects.db].ops.integer_field_range("BigIntegerField")
    for value in values:
        for part in value.split(","):
            digits = part.strip().lstrip("+-")
            if not (digits.isascii() and digits.isdigit()):
                continue
            if len(digits) > WIDEST_INTEGER_DIGITS or not low <= int(digits) <= high:
                return True
    return False
