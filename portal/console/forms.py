"""Forms of the console's actions. Staff type hours and money as people write them; the forms turn
them into exact minutes and cents, and refuse what cannot be exact."""

import re
import secrets
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing import accounting, hours_actions
from billing.disputes.evidence import EVIDENCE_FIELDS, EVIDENCE_MAX_CHARS
from billing.formatting import date_text, duration_input, hours_text
from billing.models import Lot, Plan
from billing.profiles import LOW_BALANCE_LEVEL_MAX_MINUTES

# No package holds this many hours: a longer duration is a typo.
LONGEST_DURATION_MINUTES = 10_000 * 60
DURATION_HELP = _("Write 1:15, 75 min or 1.25 h.")
_SIGN = r"(?P<sign>[-+\u2212])?\s*"  # U+2212 is the minus sign the console prints before hours taken away
# The units in English and in Portuguese ("75 minutos", "2 horas"), whichever language the console reads in.
_HOURS_UNIT = r"(?:h|hr|hrs|hour|hours|hora|horas)"
_MINUTES_UNIT = r"(?:m|min|mins|minute|minutes|minuto|minutos)"
# The ways people write a duration; digits are bounded, so no input makes an absurdly big number.
DURATION_FORMATS = [
    re.compile(_SIGN + r"(?P<hours>\d{1,6}):(?P<minutes>[0-5]\d)"),  # 1:15
    re.compile(
        _SIGN + rf"(?P<hours>\d{{1,6}})\s*{_HOURS_UNIT}\s*(?P<minutes>[0-5]?\d)\s*{_MINUTES_UNIT}?"
    ),  # 1 h 15 min
    re.compile(_SIGN + rf"(?P<minutes>\d{{1,7}})\s*{_MINUTES_UNIT}"),  # 75 min
    re.compile(_SIGN + rf"(?P<decimal_hours>\d{{0,6}}(?:[.,]\d{{1,6}})?)\s*{_HOURS_UNIT}?"),  # 1.25 h, 1.25, 2h
]


def duration_minutes(text):
    """A duration as staff write it ("1:15", "75 min", "75m", "1.25 h", "1.25", "1 h 15 min", "2h",
    "-1:30") in whole minutes. Raises ValidationError for anything else, and for a number of hours
    that is not a whole number of minutes ("1.33 h" is 79.8 minutes)."""
    text = text.strip().lower()
    for pattern in DURATION_FORMATS:
        if found := pattern.fullmatch(text):
            break
    else:
        raise forms.ValidationError(DurationField.default_error_messages["invalid"], code="invalid")
    parts = found.groupdict()
    sign = -1 if parts["sign"] in ("-", "\u2212") else 1
    if parts.get("decimal_hours") is None:
        return sign * (int(parts.get("hours") or 0) * 60 + int(parts["minutes"]))
    if parts["decimal_hours"] in ("", ".", ","):
        raise forms.ValidationError(DurationField.default_error_messages["invalid"], code="invalid")
    hours = Decimal(parts["decimal_hours"].replace(",", "."))
    minutes = hours * 60
    if minutes != minutes.to_integral_value():
        raise forms.ValidationError(
            DurationField.default_error_messages["fraction"],
            code="fraction",
            params={
                "hours": f"{hours:f}",
                "minutes": f"{minutes.normalize():f}",
                "example": duration_input(max(1, int(minutes.to_integral_value()))),
            },
        )
    return sign * int(minutes)


class DurationField(forms.Field):
    """A duration in any way staff write one (see duration_minutes), cleaned to whole minutes, shown
    back as "H:MM". `min_minutes` and `max_minutes` bound it (a negative minimum lets it be signed)."""

    widget = forms.TextInput
    default_error_messages = {
        "invalid": _("Enter a duration such as 1:15, 75 min or 1.25 h."),
        "fraction": _(
            "Enter whole minutes: %(hours)s h is %(minutes)s minutes. Write it in hours and minutes, "
            "for example %(example)s."
        ),
        "not_zero": _("Enter a duration longer than zero."),
        "not_negative": _("Enter a duration of zero or more, without a minus sign."),
        "min_value": _("Enter at least %(limit)s."),
        "max_value": _("Enter at most %(limit)s (%(hours)s)."),
    }

    def __init__(self, *, min_minutes=1, max_minutes=LONGEST_DURATION_MINUTES, **kwargs):
        self.min_minutes, self.max_minutes = min_minutes, max_minutes
        kwargs.setdefault("help_text", DURATION_HELP)
        super().__init__(**kwargs)

    def widget_attrs(self, widget):
        placeholder = "-1:30" if self.min_minutes < 0 else "1:15"
        return super().widget_attrs(widget) | {
            "autocomplete": "off",
            "spellcheck": "false",
            "maxlength": "24",
            "placeholder": placeholder,
        }

    def prepare_value(self, value):
        # An initial value in minutes; anything else is what was typed, shown back as typed.
        return duration_input(value) if isinstance(value, int) else value

    def to_python(self, value):
        if value in self.empty_values or not str(value).strip():
            return None
        return value if isinstance(value, int) else duration_minutes(str(value))

    def validate(self, value):
        super().validate(value)
        if value is None:
            return
        if value < self.min_minutes:
            if self.min_minutes == 1 and value <= 0:
                raise forms.ValidationError(self.error_messages["not_zero"], code="not_zero")
            if self.min_minutes == 0:
                raise forms.ValidationError(self.error_messages["not_negative"], code="not_negative")
            raise forms.ValidationError(
                self.error_messages["min_value"], code="min_value", params={"limit": duration_input(self.min_minutes)}
            )
        if value > self.max_minutes:
            raise forms.ValidationError(
                self.error_messages["max_value"],
                code="max_value",
                params={"limit": duration_input(self.max_minutes), "hours": hours_text(self.max_minutes)},
            )


def action_key_new():
    return secrets.token_urlsafe(18)


class OneTimeKeyField(forms.SlugField):
    """The one-time key of a form that changes hours (billing.audit.action_key_claim). Every rendering
    of the form carries a fresh key: one rendering sent twice (a double click) acts once, and a form
    shown again after an error, when nothing was done, acts when it is sent again."""

    widget = forms.HiddenInput
    default_error_messages = {
        "required": _("This form was out of date, so nothing was done. Check it and send it again.")
    }

    def __init__(self, **kwargs):
        super().__init__(max_length=64, initial=action_key_new, **kwargs)

    def bound_data(self, data, initial):
        return action_key_new()


class OneTimeKeyForm(forms.Form):
    key = OneTimeKeyField()


# Expiry dates staff may pick: from tomorrow to ten years ahead (further is a typo).
LATEST_EXPIRY_DAYS = 3650


class ExpiryField(forms.DateField):
    """A day staff pick for hours to expire on, later than today (the services keep the hours usable
    through that whole local day)."""

    widget = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")

    def clean(self, value):
        day = super().clean(value)
        if day is None:
            return None
        today = timezone.localdate()
        if day <= today:
            raise forms.ValidationError(gettext("Choose an expiry date after today."), code="past")
        if day > today + timedelta(days=LATEST_EXPIRY_DAYS):
            raise forms.ValidationError(gettext("Choose an expiry date within ten years."), code="too_far")
        return day


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
        kwargs.setdefault("label", _("Reason"))
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2}))
        super().__init__(**kwargs)


class RefundForm(forms.Form):
    amount = MoneyField(label=_("Amount to refund"))
    hours = DurationField(
        label=_("Hours to take back"),
        min_minutes=0,
        help_text=_("Defaults to the refund's share of the unused hours. Write 1:15, 75 min or 1.25 h."),
    )
    reason = ReasonField()
    key = forms.SlugField(required=False, max_length=40, widget=forms.HiddenInput)


class ReasonForm(forms.Form):
    reason = ReasonField()


class NoteForm(forms.Form):
    note = ReasonField(max_length=1000, label=_("Note"))


class FlagConfirmForm(forms.Form):
    reason = ReasonField()
    block = forms.BooleanField(required=False, initial=True, label=_("Block the student from buying"))
    refund = forms.BooleanField(required=False, label=_("Refund the flagged payment in full"))


# A correction beyond this is a purchase or a refund, not an adjustment.
MAX_ADJUSTMENT_MINUTES = 100 * 60
# Nobody is tutored for longer at a stretch.
MAX_SESSION_MINUTES = 12 * 60
# A gift beyond this is a sale in disguise.
MAX_GRANT_MINUTES = 100 * 60
# Sessions are recorded for the portal's own lifetime, not for dates a typo makes up.
EARLIEST_SESSION_YEAR = 2020


class SessionForm(OneTimeKeyForm):
    occurred_at = forms.DateTimeField(
        label=_("When"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    )
    duration = DurationField(label=_("Duration"), max_minutes=MAX_SESSION_MINUTES)
    tutor = forms.CharField(max_length=120, label=_("Tutor"))
    subject = forms.CharField(max_length=120, label=_("Subject"))

    def clean_occurred_at(self):
        occurred_at = self.cleaned_data["occurred_at"]
        if occurred_at > timezone.now():
            raise forms.ValidationError(gettext("A session cannot be recorded before it happened."))
        if occurred_at.year < EARLIEST_SESSION_YEAR:
            raise forms.ValidationError(gettext("That date is long before any package; check the year."))
        return occurred_at


class AdjustmentForm(OneTimeKeyForm):
    lot = forms.ModelChoiceField(queryset=Lot.objects.none(), label=_("Package"))
    hours = DurationField(
        label=_("Change in hours"),
        min_minutes=-MAX_ADJUSTMENT_MINUTES,
        max_minutes=MAX_ADJUSTMENT_MINUTES,
        help_text=_("Negative to remove hours, e.g. -1:30. Write 1:15, 75 min or 1.25 h."),
    )
    reason = ReasonField(max_length=200)  # kept on the ledger entry

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lot"].queryset = Lot.objects.filter(account=account, expires_at__gt=timezone.now())
        self.fields["lot"].label_from_instance = _lot_label

    def clean_hours(self):
        minutes = self.cleaned_data["hours"]
        if minutes == 0:
            raise forms.ValidationError(gettext("An adjustment must change the hours."))
        return minutes


class GrantForm(OneTimeKeyForm):
    # The name is offered in the staff member's language; the student sees it as it is saved.
    name = forms.CharField(
        max_length=80,
        initial=_("Complimentary hours"),
        label=_("Package name"),
        help_text=_("What the student sees."),
    )
    duration = DurationField(label=_("Hours"), max_minutes=MAX_GRANT_MINUTES)
    expires_at = ExpiryField(label=_("Expires on"))
    reason = ReasonField(max_length=200)  # kept on the ledger entry


class LotExtendForm(OneTimeKeyForm):
    expires_at = ExpiryField(label=_("New expiry date"))
    reason = ReasonField()


class ExtensionDaysField(forms.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=hours_actions.MAX_EXTENSION_DAYS, label=_("Days later"), **kwargs)


class AccountLotsExtendForm(OneTimeKeyForm):
    days = ExtensionDaysField(help_text=_("Every usable package of the student expires this many days later."))
    reason = ReasonField()


class BulkExtendForm(OneTimeKeyForm):
    """The bulk extension: its selection (a plan's lots expiring between two dates), how far, why;
    on confirmation also the number of lots the preview showed."""

    plan = forms.ModelChoiceField(queryset=Plan.objects.order_by("name"), label=_("Plan"))
    expires_from = forms.DateField(label=_("Expiring from"), widget=forms.DateInput(attrs={"type": "date"}))
    expires_to = forms.DateField(
        label=_("Expiring up to"), help_text=_("This day included."), widget=forms.DateInput(attrs={"type": "date"})
    )
    days = ExtensionDaysField(help_text=_("Every one of these packages expires this many days later."))
    reason = ReasonField()
    expected_lots = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("expires_from"), cleaned.get("expires_to")
        if since and until and since > until:
            self.add_error("expires_to", gettext("Choose an end date on or after the start date."))
        return cleaned


class VoidForm(OneTimeKeyForm):
    reason = ReasonField()


class LowBalanceLevelForm(forms.Form):
    minutes = DurationField(
        label=_("Remind the student at"),
        min_minutes=0,
        max_minutes=LOW_BALANCE_LEVEL_MAX_MINUTES,
        help_text=_("When the balance falls to this. 0:00 turns the reminder off. Write 2:00, 90 min or 1.5 h."),
    )
    reason = ReasonField()


def _lot_label(lot):
    return gettext("%(name)s #%(number)s, expires %(date)s") % {
        "name": lot.name,
        "number": lot.pk,
        "date": date_text(lot.expires_at),
    }


class ReceiptResendForm(forms.Form):
    """Support resends to the student's own (verified) addresses; only Finance sends a receipt
    anywhere else (a receipt names the student and what they paid), on a fresh code like any
    Finance action."""

    to = forms.EmailField(required=False, label=_("Send to"), help_text=_("Empty: the student's own address."))

    def __init__(self, *args, student, may_send_elsewhere, **kwargs):
        super().__init__(*args, **kwargs)
        self.own_addresses = {student.email.lower()} | {
            address.lower()
            for address in student.emailaddress_set.filter(verified=True).values_list("email", flat=True)
        }
        self.may_send_elsewhere = may_send_elsewhere
        if not may_send_elsewhere:
            self.fields["to"].help_text = gettext(
                "Empty: the student's own address. Only Finance sends to another address."
            )

    def clean_to(self):
        to = self.cleaned_data["to"]
        if self._elsewhere(to) and not self.may_send_elsewhere:
            raise forms.ValidationError(
                gettext("Only Finance may send a receipt to an address that is not the student's.")
            )
        return to

    def sends_elsewhere(self):
        return self._elsewhere(self.cleaned_data["to"])

    def _elsewhere(self, to):
        return bool(to) and to.lower() not in self.own_addresses


class EvidenceForm(forms.Form):
    """Stripe's structured dispute evidence, as text (files are made from it on submission), in the
    order and with the labels billing.disputes.evidence.EVIDENCE_FIELDS gives."""

    HELP = {
        "receipt": _("Our receipt number; its PDF is attached."),
        "customer_communication": _("Sent as a PDF."),
        "service_documentation": _("Sent as a PDF."),
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


# Staff alerts (alerts.staff): the inbox's "mark read" and the email settings.


class AlertReadForm(forms.Form):
    """One alert to mark read; without it, every alert in the inbox."""

    alert = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class StaffEmailPreferencesForm(forms.Form):
    """The staff kinds a person is offered, each to be emailed or not (the console shows them all)."""

    emailed = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label=_("Email me about"))

    def __init__(self, *args, kinds, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["emailed"].choices = [(kind, kind.label) for kind in kinds]


# Accounting exports (billing.accounting).

# As <input type="month"> and <input type="date"> send and show them, whatever the language.
ISO_MONTH, ISO_DAY = "%Y-%m", "%Y-%m-%d"
PERIOD_BOTH_WAYS = _("Choose a month, or a first and a last day: not both.")
PERIOD_ONE_DAY = _("Give both the first and the last day.")


class AccountingPeriodForm(forms.Form):
    """The period of the accounting exports, in the school's time zone: a calendar month, or the days
    from one date to another, both included; with neither, last month. `period` once clean."""

    month = forms.DateField(
        label=_("Month"),
        required=False,
        input_formats=[ISO_MONTH],
        widget=forms.DateInput(attrs={"type": "month"}, format=ISO_MONTH),
    )
    start = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format=ISO_DAY)
    )
    end = forms.DateField(
        label=_("To (included)"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format=ISO_DAY)
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "period-%s")
        super().__init__(*args, **kwargs)

    @classmethod
    def showing(cls, period):
        """An unbound form showing `period`: its month if it is one, and its first and last day."""
        month = period.start if period.is_calendar_month else None
        return cls(initial={"month": month, "start": period.start, "end": period.last_day})

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        month, start, end = cleaned.get("month"), cleaned.get("start"), cleaned.get("end")
        if month and (start or end):
            raise forms.ValidationError(PERIOD_BOTH_WAYS)
        if bool(start) != bool(end):
            raise forms.ValidationError(PERIOD_ONE_DAY)
        try:
            if month:
                cleaned["period"] = accounting.accounting_month(month)
            elif start:
                cleaned["period"] = accounting.accounting_period(first_day=start, last_day=end)
            else:
                cleaned["period"] = accounting.accounting_period_default()
        except accounting.AccountingPeriodInvalid as invalid:
            raise forms.ValidationError(str(invalid)) from invalid
        return cleaned
