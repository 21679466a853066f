from decimal import Decimal

from django import forms
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from alerts.models import STUDENT_KINDS, Notification
from billing.errors import AccountDetailsInvalid
from billing.formatting import currency_text, hours_text, money_input, money_text
from billing.profiles import LEVEL_OUT_OF_RANGE, LOW_BALANCE_LEVEL_MAX_MINUTES, tax_id_normalise
from billing.topups import MAX_TOP_UPS_A_MONTH
from portal.locale import LANGUAGE_CODES, time_zone_names

# Our rows' ids are BigAutoFields (settings.DEFAULT_AUTO_FIELD): a larger number names no row.
MAX_ID = 2**63 - 1


class PayForm(forms.Form):
    token = forms.CharField(max_length=1000)
    payment_method = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class DashboardQuery(forms.Form):
    """The dashboard's query string: the payment whose 3-D Secure check a "confirm your payment"
    alert reopens, and the failed payment a "please pay again" alert offers to pay again."""

    resume = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    again = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


SHOW_DECLINED, HIDE_DECLINED = "show", "hide"


class PurchaseHistoryQuery(forms.Form):
    """The purchase history's filter: declined attempts shown (the default) or hidden. The page's
    checkbox sits after a hidden "hide" of the same name and sends "show" when ticked (the last
    value counts), so that an unticked box is told apart from a first visit."""

    prefix = "purchases"
    declined = forms.ChoiceField(choices=[(SHOW_DECLINED, "Show"), (HIDE_DECLINED, "Hide")], required=False)

    @property
    def declined_shown(self):
        self.is_valid()
        return self.cleaned_data.get("declined") != HIDE_DECLINED


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
        label=_("Email me about"),
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


class BillingDetailsForm(forms.Form):
    """The name and billing details printed on the receipts issued from now on. All may be left
    empty: a receipt then names the student by their email address."""

    first_name = forms.CharField(max_length=150, required=False, label=_("First name"))
    last_name = forms.CharField(max_length=150, required=False, label=_("Last name"))
    billing_address = forms.CharField(
        max_length=300, required=False, label=_("Billing address"), widget=forms.Textarea(attrs={"rows": 3})
    )
    tax_id = forms.CharField(
        max_length=30,
        required=False,
        label=_("Tax number (NIF)"),
        help_text=_(
            "A Portuguese NIF (9 digits, with or without PT in front), or an EU VAT number starting "
            "with its two-letter country code. Portuguese numbers are checked; others are printed as you enter them."
        ),
    )

    def clean_tax_id(self):
        try:
            return tax_id_normalise(self.cleaned_data["tax_id"])
        except AccountDetailsInvalid as invalid:
            raise forms.ValidationError(str(invalid)) from invalid


# Automatic top-up's level offered at first: the reminder's, or this when the reminder is off.
DEFAULT_AUTO_TOP_UP_LEVEL = 120
MINUTES_OUT_OF_RANGE = _("Enter 0 to 59 minutes; put whole hours in the hours box.")
# billing.profiles keeps its message in English (gettext_noop): translated where it is shown.
LEVEL_OUT_OF_RANGE_TEXT = _(LEVEL_OUT_OF_RANGE)


class LowBalanceLevelForm(forms.Form):
    """The low-balance reminder level as hours and minutes; 0 h 0 min turns the reminder off."""

    hours = forms.IntegerField(
        min_value=0,
        max_value=LOW_BALANCE_LEVEL_MAX_MINUTES // 60,
        label=_("Hours"),
        error_messages={"min_value": LEVEL_OUT_OF_RANGE_TEXT, "max_value": LEVEL_OUT_OF_RANGE_TEXT},
    )
    minutes = forms.IntegerField(
        min_value=0,
        max_value=59,
        label=_("Minutes"),
        error_messages={"min_value": MINUTES_OUT_OF_RANGE, "max_value": MINUTES_OUT_OF_RANGE},
    )

    @classmethod
    def for_level(cls, minutes):
        hours, rest = divmod(minutes, 60)
        return cls(initial={"hours": hours, "minutes": rest})

    def clean(self):
        cleaned = super().clean()
        if "hours" in cleaned and "minutes" in cleaned:
            cleaned["level_minutes"] = cleaned["hours"] * 60 + cleaned["minutes"]
            if cleaned["level_minutes"] > LOW_BALANCE_LEVEL_MAX_MINUTES:
                raise forms.ValidationError(gettext(LEVEL_OUT_OF_RANGE))
        return cleaned


class LanguageSelect(forms.Select):
    """The languages, each named in itself and marked with its `lang`, so that a screen reader says
    "Português" as Portuguese and someone who cannot read the current language still finds theirs."""

    def create_option(self, name, value, *args, **kwargs):
        option = super().create_option(name, value, *args, **kwargs)
        option["attrs"]["lang"] = value
        return option


class LocalePreferencesForm(forms.Form):
    """The language the student's pages, emails and receipts are written in, and the time zone their
    times show in (blank: the site's, named in the list). portal.locale.locale_preferences_save checks
    them again."""

    language = forms.ChoiceField(
        choices=settings.LANGUAGES,
        label=_("Language"),
        widget=LanguageSelect,
        error_messages={"invalid_choice": _("Choose one of the languages offered.")},
    )
    time_zone = forms.ChoiceField(
        required=False,
        label=_("Time zone"),
        help_text=_("Times on your pages, in emails and on receipts are shown in this zone."),
        error_messages={"invalid_choice": _("Choose a time zone from the list.")},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        default = gettext("Default (%(zone)s)") % {"zone": settings.TIME_ZONE}
        self.fields["time_zone"].choices = [("", default), *((name, name) for name in time_zone_names())]

    @classmethod
    def for_user(cls, user):
        """The form as the user's choices stand: a language never chosen shows the one the page is in."""
        language = user.language if user.language in LANGUAGE_CODES else translation.get_language()
        if language not in LANGUAGE_CODES:
            language = settings.LANGUAGE_CODE
        return cls(initial={"language": language, "time_zone": user.time_zone})


class AutoTopUpForm(forms.Form):
    """Automatic top-up: "below this level, buy this package with this card", and the monthly cap
    (both limits required). `plans` (on sale) and `cards` (the student's) are read once by the view;
    billing.topups checks the settings again when it saves them."""

    level_hours = forms.IntegerField(min_value=0, max_value=LOW_BALANCE_LEVEL_MAX_MINUTES // 60, label=_("Hours"))
    level_minutes = forms.IntegerField(
        min_value=0,
        max_value=59,
        label=_("Minutes"),
        error_messages={"min_value": MINUTES_OUT_OF_RANGE, "max_value": MINUTES_OUT_OF_RANGE},
    )
    plan = forms.TypedChoiceField(
        coerce=int,
        label=_("Buy"),
        error_messages={"invalid_choice": _("This package is not for sale. Please choose another one.")},
    )
    card = forms.TypedChoiceField(
        coerce=int,
        label=_("With the card"),
        error_messages={"invalid_choice": _("That card is not one of your saved cards.")},
    )
    count_cap = forms.IntegerField(
        min_value=1,
        max_value=MAX_TOP_UPS_A_MONTH,
        label=_("At most this many top-ups a month"),
        error_messages={"min_value": _("Enter at least 1 top-up a month."), "max_value": _("Enter at most 31.")},
    )
    amount_cap = forms.DecimalField(
        min_value=Decimal("0.01"),
        max_digits=8,
        decimal_places=2,
        label=_("And at most this amount a month"),
        error_messages={"min_value": _("Enter a monthly amount above zero.")},
    )

    def __init__(self, *args, plans, cards, **kwargs):
        super().__init__(*args, **kwargs)
        self.plans = {plan.pk: plan for plan in plans}
        self.cards = {card.pk: card for card in cards}
        self.fields["plan"].choices = [(plan.pk, _plan_choice(plan)) for plan in plans]
        self.fields["card"].choices = [(card.pk, card.label) for card in cards]
        self.fields["amount_cap"].widget.attrs.update(step="0.01", inputmode="decimal")
        # The packages' currency (the portal's): one cap in one currency.
        self.fields["amount_cap"].help_text = gettext("In %(currency)s.") % {
            "currency": currency_text(settings.PORTAL_CURRENCY)
        }

    @classmethod
    def for_setting(cls, *, account, setting, plans, cards):
        if setting is not None:
            minutes, plan, card = setting.threshold_minutes, setting.plan, setting.card
            count_cap, amount_cap_cents = setting.monthly_count_cap, setting.monthly_amount_cap_cents
        else:
            minutes = account.low_balance_threshold_minutes or DEFAULT_AUTO_TOP_UP_LEVEL
            plan = next((plan for plan in plans if plan.is_featured), plans[0] if plans else None)
            card = next((card for card in cards if card.is_default), cards[0] if cards else None)
            count_cap, amount_cap_cents = 2, 2 * plan.price_cents if plan else None
        hours, rest = divmod(minutes, 60)
        initial = {
            "level_hours": hours,
            "level_minutes": rest,
            "plan": plan.pk if plan else None,
            "card": card.pk if card else None,
            "count_cap": count_cap,
            "amount_cap": money_input(amount_cap_cents) if amount_cap_cents else "",
        }
        return cls(plans=plans, cards=cards, initial=initial)

    def clean(self):
        cleaned = super().clean()
        if "level_hours" in cleaned and "level_minutes" in cleaned:
            cleaned["threshold_minutes"] = cleaned["level_hours"] * 60 + cleaned["level_minutes"]
            if cleaned["threshold_minutes"] == 0:
                self.add_error("level_hours", gettext("Enter a level above zero."))
        if cleaned.get("amount_cap") is not None:
            cleaned["amount_cap_cents"] = int(cleaned["amount_cap"] * 100)
        if "plan" in cleaned:
            cleaned["plan"] = self.plans[cleaned["plan"]]
        if "card" in cleaned:
            cleaned["card"] = self.cards[cleaned["card"]]
        return cleaned


def _plan_choice(plan):
    return gettext("%(plan)s: %(hours)s for %(price)s") % {
        "plan": plan.name,
        "hours": hours_text(plan.minutes),
        "price": money_text(plan.price_cents, plan.currency),
    }


class AutoTopUpStateForm(forms.Form):
    action = forms.ChoiceField(choices=[("pause", "pause"), ("resume", "resume"), ("off", "off")])
