"""The form of a student's erasure in the console: staff type the student's email to confirm it,
and give the reason (the request's date and channel) for the audit log."""

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.console.forms import ReasonField


class ErasureForm(forms.Form):
    email = forms.CharField(
        label=_("The student's email address"),
        max_length=254,
        help_text=_("Type it to confirm that this is the student who asked."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    reason = ReasonField(help_text=_("For example: asked by email on 3 March; ticket number."))
