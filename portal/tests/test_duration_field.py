"""The console's one duration field (portal.console.forms.DurationField): staff write hours as they
think of them ("1:15", "75 min", "1.25 h"), the field keeps exact whole minutes, refuses what is not
a whole number of minutes, and shows a value back as "H:MM"."""

from decimal import Decimal

import pytest
from django import forms

from portal.console.forms import DurationField, RefundForm

EVERY_MINUTE = range(1, 721)  # a minute to twelve hours


def hours_and_minutes(minutes):
    whole, rest = divmod(minutes, 60)
    return whole, rest


def as_clock(minutes):
    return "{}:{:02d}".format(*hours_and_minutes(minutes))


def as_minutes(minutes):
    return f"{minutes} min"


def as_m(minutes):
    return f"{minutes}m"


def as_hours_and_minutes(minutes):
    whole, rest = hours_and_minutes(minutes)
    return f"{whole} h {rest} min"


def as_compact_hours_and_minutes(minutes):
    whole, rest = hours_and_minutes(minutes)
    return f"{whole}h{rest}m"


FORMATS = [as_clock, as_minutes, as_m, as_hours_and_minutes, as_compact_hours_and_minutes]


@pytest.fixture
def field():
    return DurationField(max_minutes=12 * 60)


@pytest.mark.parametrize("write", FORMATS, ids=lambda write: write.__name__)
def test_every_minute_from_one_to_twelve_hours_reads_back_exactly(field, write):
    assert [field.clean(write(minutes)) for minutes in EVERY_MINUTE] == list(EVERY_MINUTE)


def test_every_minute_that_decimal_hours_can_say_exactly_reads_back(field):
    # 3 minutes are 0.05 h; 50 minutes are 0.8333... h, which no decimal says exactly.
    exact = [minutes for minutes in EVERY_MINUTE if (Decimal(minutes) / 60 * 100) % 1 == 0]
    assert len(exact) == 240
    for minutes in exact:
        hours = f"{(Decimal(minutes) / 60):f}"
        assert field.clean(hours) == minutes
        assert field.clean(f"{hours} h") == minutes


def test_every_value_is_shown_as_hours_and_minutes_that_read_back(field):
    for minutes in EVERY_MINUTE:
        shown = field.prepare_value(minutes)
        assert shown == as_clock(minutes)
        assert field.clean(shown) == minutes


@pytest.mark.parametrize(
    "text", ["1:15", "75 min", "75m", "1.25 h", "1.25", "1 h 15 min", "1h15m", "1 hour 15 minutes", " 1:15 ", "1,25"]
)
def test_the_ways_people_write_an_hour_and_a_quarter_read_alike(field, text):
    assert field.clean(text) == 75


@pytest.mark.parametrize(("text", "minutes"), [("2h", 120), ("0:50", 50), ("50 min", 50), (".5 h", 30), ("12", 720)])
def test_short_forms_read_as_written(field, text, minutes):
    assert field.clean(text) == minutes


def test_fractions_of_a_minute_are_refused_with_the_nearest_whole_minutes(field):
    with pytest.raises(forms.ValidationError) as refused:
        field.clean("1.33 h")
    assert refused.value.messages == [
        "Enter whole minutes: 1.33 h is 79.8 minutes. Write it in hours and minutes, for example 1:20."
    ]


@pytest.mark.parametrize("text", ["abc", "1:75", "1:5", "h", "1e3", "1.2.3", "1 h 60 min", "one hour", "1:15:00"])
def test_what_is_not_a_duration_is_refused_in_words(field, text):
    with pytest.raises(forms.ValidationError) as refused:
        field.clean(text)
    assert refused.value.messages == ["Enter a duration such as 1:15, 75 min or 1.25 h."]


@pytest.mark.parametrize("text", ["0", "0:00", "0 min", "-1:30", "-5 min"])
def test_zero_and_negative_are_refused_where_a_duration_must_be_positive(field, text):
    with pytest.raises(forms.ValidationError) as refused:
        field.clean(text)
    assert refused.value.messages == ["Enter a duration longer than zero."]


def test_more_than_the_limit_is_refused_naming_the_limit(field):
    with pytest.raises(forms.ValidationError) as refused:
        field.clean("12:01")
    assert refused.value.messages == ["Enter at most 12:00 (12 h)."]


@pytest.mark.parametrize("text", ["99999999", "9" * 30, "1" * 25 + " min"])
def test_absurdly_long_numbers_are_refused_not_computed(field, text):
    with pytest.raises(forms.ValidationError):
        field.clean(text)


def test_a_signed_field_takes_a_minus_in_every_format_and_the_printed_minus_sign():
    signed = DurationField(min_minutes=-6000, max_minutes=6000)
    assert [signed.clean(text) for text in ("-1:30", "-90 min", "-1.5 h", "−1.5 h", "- 1 h 30 min", "+1:30")] == [
        -90,
        -90,
        -90,
        -90,
        -90,
        90,
    ]
    assert signed.prepare_value(-90) == "-1:30"
    with pytest.raises(forms.ValidationError) as refused:
        signed.clean("-100:01")
    assert refused.value.messages == ["Enter at least -100:00."]


def test_a_field_that_allows_zero_refuses_only_negatives():
    zero_or_more = DurationField(min_minutes=0)
    assert zero_or_more.clean("0:00") == 0
    with pytest.raises(forms.ValidationError) as refused:
        zero_or_more.clean("-0:10")
    assert refused.value.messages == ["Enter a duration of zero or more, without a minus sign."]


def test_the_help_text_names_the_formats(field):
    assert field.help_text == "Write 1:15, 75 min or 1.25 h."


def test_the_refund_forms_default_of_550_minutes_is_shown_as_hours_and_minutes_and_accepted():
    shown = RefundForm(initial={"hours": 550})["hours"].value()
    assert shown == "9:10"
    submitted = RefundForm({"amount": "10.00", "hours": shown, "reason": "Cancelled."})
    assert submitted.is_valid(), submitted.errors
    assert submitted.cleaned_data["hours"] == 550


def test_a_typed_value_is_shown_back_as_typed_when_the_form_has_an_error():
    form = RefundForm({"amount": "ten", "hours": "1.33 h", "reason": "x"})
    assert not form.is_valid()
    assert 'value="1.33 h"' in str(form["hours"])
