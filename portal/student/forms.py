from django import forms

from alerts.models import Notification


class PayForm(forms.Form):
    token = forms.CharField(max_length=1000)
    payment_method = forms.IntegerField(required=False, min_value=1)


class CardSaveForm(forms.Form):
    setup_intent = forms.RegexField(regex=r"^seti_[A-Za-z0-9_]+$", max_length=255)


class EmailPreferencesForm(forms.Form):
    emailed = forms.MultipleChoiceField(
        choices=Notification.Kind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Email me about",
    )
