"""The statement forms the student's pages and the console share: the range of days a statement
covers (last calendar month unless asked otherwise), and the student's monthly email choice."""

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.errors import StatementRangeInvalid
from billing.formatting import iso_date
from billing.statements import statement_default_range, statement_range_check

# As <input type="date"> sends and shows it, whatever the language.
ISO_DATE = "%Y-%m-%d"


class StatementRangeForm(forms.Form):
    """The days a statement covers, both included, in the account holder's time zone. A query with
    neither day asks for last calendar month (the dashboard's link); with one, both are needed."""

    start = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}, format=ISO_DATE))
    end = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}, format=ISO_DATE))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "statement-%s")
        super().__init__(*args, **kwargs)

    @classmethod
    def for_query(cls, query, *, account):
        """The form bound to a download's query string."""
        if "start" not in query and "end" not in query:
            start, end = statement_default_range(account=account)
            return cls({"start": iso_date(start), "end": iso_date(end)})
        return cls(query)

    @classmethod
    def for_account(cls, account):
        """An unbound form showing last calendar month."""
        start, end = statement_default_range(account=account)
        return cls(initial={"start": start, "end": end})

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end"):
            try:
                statement_range_check(cleaned["start"], cleaned["end"])
            except StatementRangeInvalid as invalid:
                raise forms.ValidationError(str(invalid)) from invalid
        return cleaned


class StatementEmailsForm(forms.Form):
    statement_emails = forms.BooleanField(
        label=_("Email me last month's statement on the first of each month"), required=False
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "statement-%s")
        super().__init__(*args, **kwargs)
