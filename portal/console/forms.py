"""Forms of the console's actions. Staff type hours and money as people write them; the forms turn
them into exact minutes and cents, and refuse what cannot be exact."""

from decimal import Decimal

from django import forms
from django.utils import timezone

from billing.disputes.evidence import EVIDENCE_FIELDS, EVIDENCE_MAX_CHARS
from billing.formatting import date_text
from billing.models import Lot


class HoursField(forms.DecimalField):
    """Hours as a decimal ("2.5", "0.75"), cleaned to whole minutes."""

    def __init__(self, *, allow_negative=False, **kwargs):
        kwargs.setdefault("decimal_places", 4)
        kwargs.setdefault("max_digits", 9)
        if not allow_negative:
            kwargs.setdefault("min_value", Decimal(0))
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("step", "0.25")

    def clean(self, value):
        hours = super().clean(value)
        if hours is None:
            return None
        minutes = hours * 60
        if minutes != minutes.to_integral_value():
            raise forms.ValidationError("Enter hours that make whole minutes, e.g. 2.5 or 1.75.")
        return int(minutes)


class MoneyField(forms.DecimalField):
    """An amount in currency units ("75.50"), cleaned to cents."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=10, decimal_places=2, min_value=Decimal("0.01"), **kwargs)
        self.widget.attrs.setdefault("step", "0.01")

    def clean(self, value):
        amount = super().clean(value)
        return None if amount is None else int(amount * 100)


class ReasonField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 300)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2}))
        super().__init__(**kwargs)


class RefundForm(forms.Form):
    amount = MoneyField(label="Amount to refund")
    hours = HoursField(label="Hours to take back", help_text="Defaults to the refund's share of the unused hours.")
    reason = ReasonField()
    key = forms.SlugField(required=False, max_length=40, widget=forms.HiddenInput)


class ReasonForm(forms.Form):
    reason = ReasonField()


class NoteForm(forms.Form):
    note = ReasonField(max_length=1000)


class FlagConfirmForm(forms.Form):
    reason = ReasonField()
    block = forms.BooleanField(required=False, initial=True, label="Block the student from buying")
    refund = forms.BooleanField(required=False, label="Refund the flagged payment in full")


# A correction beyond this is a purchase or a refund, not an adjustment.
MAX_ADJUSTMENT_HOURS = Decimal(100)
# Sessions are recorded for the portal's own lifetime, not for dates a typo makes up.
EARLIEST_SESSION_YEAR = 2020


class SessionForm(forms.Form):
    occurred_at = forms.DateTimeField(
        label="When", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    )
    duration = HoursField(label="Duration in hours", min_value=Decimal("0.01"), max_value=Decimal(12))
    tutor = forms.CharField(max_length=120)
    subject = forms.CharField(max_length=120)

    def clean_occurred_at(self):
        occurred_at = self.cleaned_data["occurred_at"]
        if occurred_at > timezone.now():
            raise forms.ValidationError("A session cannot be recorded before it happened.")
        if occurred_at.year < EARLIEST_SESSION_YEAR:
            raise forms.ValidationError("That date is long before any package; check the year.")
        return occurred_at


class AdjustmentForm(forms.Form):
    lot = forms.ModelChoiceField(queryset=Lot.objects.none(), label="Package")
    hours = HoursField(
        label="Change in hours",
        allow_negative=True,
        min_value=-MAX_ADJUSTMENT_HOURS,
        max_value=MAX_ADJUSTMENT_HOURS,
        help_text="Negative to remove hours, e.g. -1.5.",
    )
    reason = ReasonField(max_length=200)  # kept on the ledger entry

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lot"].queryset = Lot.objects.filter(account=account, expires_at__gt=timezone.now())
        self.fields["lot"].label_from_instance = _lot_label

    def clean_hours(self):
        minutes = self.cleaned_data["hours"]
        if minutes == 0:
            raise forms.ValidationError("An adjustment must change the hours.")
        return minutes


def _lot_label(lot):
    return f"{lot.name} #{lot.pk}, expires {date_text(lot.expires_at)}"


class ReceiptResendForm(forms.Form):
    """Support resends to the student's own (verified) addresses; only Finance sends a receipt
    anywhere else (a receipt names the student and what they paid), on a fresh code like any
    Finance action."""

    to = forms.EmailField(required=False, label="Send to", help_text="Empty: the student's own address.")

    def __init__(self, *args, student, may_send_elsewhere, **kwargs):
        super().__init__(*args, **kwargs)
        self.own_addresses = {student.email.lower()} | {
            address.lower()
            for address in student.emailaddress_set.filter(verified=True).values_list("email", flat=True)
        }
        self.may_send_elsewhere = may_send_elsewhere
        if not may_send_elsewhere:
            self.fields["to"].help_text = "Empty: the student's own address. Only Finance sends to another address."

    def clean_to(self):
        to = self.cleaned_data["to"]
        if self._elsewhere(to) and not self.may_send_elsewhere:
            raise forms.ValidationError("Only Finance may send a receipt to an address that is not the student's.")
        return to

    def sends_elsewhere(self):
        return self._elsewhere(self.cleaned_data["to"])

    def _elsewhere(self, to):
        return bool(to) and to.lower() not in self.own_addresses


class EvidenceForm(forms.Form):
    """Stripe's structured dispute evidence, as text (files are made from it on submission), in the
    order and with the labels billing.disputes.evidence.EVIDENCE_FIELDS gives."""

    HELP = {
        "receipt": "Our receipt number; its PDF is attached.",
        "customer_communication": "Sent as a PDF.",
        "service_documentation": "Sent as a PDF.",
    }
    SHORT = {"service_date", "receipt"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in EVIDENCE_FIELDS.items():
            widget = forms.TextInput() if name in self.SHORT else forms.Textarea(attrs={"rows": 5})
            self.fields[name] = forms.CharField(
                label=label,
                required=False,
                max_length=EVIDENCE_MAX_CHARS,
                widget=widget,
                help_text=self.HELP.get(name, ""),
            )
