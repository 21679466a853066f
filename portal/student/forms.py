from django import forms


class PayForm(forms.Form):
    token = forms.CharField(max_length=1000)
    payment_method = forms.IntegerField(required=False, min_value=1)


class CardSaveForm(forms.Form):
    setup_intent = forms.RegexField(regex=r"^seti_[A-Za-z0-9_]+$", max_length=255)
