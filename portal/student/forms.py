from django import forms

from alerts.models import STUDENT_KINDS, Notification

# Our rows' ids are BigAutoFields (settings.DEFAULT_AUTO_FIELD): a larger number names no row.
MAX_ID = 2**63 - 1


class PayForm(forms.Form):
    token = forms.CharField(max_length=1000)
    payment_method = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class DashboardQuery(forms.Form):
    """The dashboard's query string: the payment whose 3-D Secure check a "confirm your payment"
    alert reopens."""

    resume = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class PaymentCheckQuery(forms.Form):
    """How many times the page has asked about a payment still being checked."""

    attempt = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID)


class CardSaveForm(forms.Form):
    setup_intent = forms.RegexField(regex=r"^seti_[A-Za-z0-9_]+$", max_length=255)


class EmailPreferencesForm(forms.Form):
    emailed = forms.MultipleChoiceField(
        choices=[(kind, label) for kind, label in Notification.Kind.choices if kind in STUDENT_KINDS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Email me about",
    )


class SubscribeForm(forms.Form):
    """A subscribe button: its one-time token, and the saved card it offers (the card becomes the
    default card, which a subscription charges)."""

    token = forms.CharField(max_length=1000)
    payment_method = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class PlanChangeForm(forms.Form):
    plan = forms.IntegerField(min_value=1, max_value=MAX_ID)


class SubscriptionCardForm(forms.Form):
    payment_method = forms.IntegerField(min_value=1, max_value=MAX_ID)
