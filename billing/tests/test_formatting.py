"""billing.formatting, on its own: hours, money and durations exactly, and every date and time in
the viewer's local time whatever time zone the moment was stored in."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone, translation

from billing import formatting

# 23:30 UTC on 14 March: already the 15th in Berlin (UTC+1), still the 14th in Lisbon (UTC+0).
LATE_EVENING_UTC = datetime(2026, 3, 14, 23, 30, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(0, "0 h"), (30, "0.5 h"), (50, "0.83 h"), (210, "3.5 h"), (600, "10 h"), (605, "10.08 h"), (-90, "-1.5 h")],
)
def test_hours(minutes, text):
    assert formatting.hours_text(minutes) == text


@pytest.mark.parametrize(("minutes", "text"), [(90, "+1.5 h"), (-50, "−0.83 h"), (600, "+10 h")])
def test_a_change_of_hours_carries_its_sign(minutes, text):
    assert formatting.signed_hours_text(minutes) == text


@pytest.mark.parametrize(("minutes", "text"), [(45, "45 min"), (60, "1 h"), (90, "1 h 30 min"), (0, "0 min")])
def test_duration(minutes, text):
    assert formatting.duration_text(minutes) == text


@pytest.mark.parametrize(
    ("minutes", "text"), [(0, "0:00"), (5, "0:05"), (60, "1:00"), (75, "1:15"), (550, "9:10"), (-90, "-1:30")]
)
def test_a_duration_for_a_form_field_is_hours_and_minutes(minutes, text):
    assert formatting.duration_input(minutes) == text


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [(15000, "EUR", "€150.00"), (5, "EUR", "€0.05"), (123456789, "USD", "US$1,234,567.89")],
)
def test_money(cents, currency, text):
    assert formatting.money_text(cents, currency) == text


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (15000, "150,00\N{NO-BREAK SPACE}€"),
        (123456, "1\N{NO-BREAK SPACE}234,56\N{NO-BREAK SPACE}€"),
        (123456789, "1\N{NO-BREAK SPACE}234\N{NO-BREAK SPACE}567,89\N{NO-BREAK SPACE}€"),
    ],
)
def test_money_reads_as_portuguese_writes_it(cents, text):
    with translation.override("pt-pt"):
        assert formatting.money_text(cents, "EUR") == text


def test_hours_and_dates_read_as_portuguese_writes_them():
    with translation.override("pt-pt"), timezone.override("Europe/Lisbon"):
        assert formatting.hours_text(210) == "3,5 h"
        assert formatting.date_text(LATE_EVENING_UTC) == "14/03/2026"
        assert formatting.datetime_text(LATE_EVENING_UTC) == "14/03/2026, 23:30"
        assert formatting.period_text(LATE_EVENING_UTC, "month") == "março de 2026"


def test_a_language_the_site_does_not_speak_reads_as_the_default():
    with translation.override("de"):
        assert formatting.money_text(15000, "EUR") == "€150.00"


def test_a_reader_locale_is_the_readers_own_not_the_requests():
    class Reader:
        language = "pt-pt"
        time_zone = "Atlantic/Azores"

    with translation.override("en"), timezone.override("Europe/Berlin"), formatting.reader_locale(Reader()):
        assert formatting.money_text(15000, "EUR") == "150,00\N{NO-BREAK SPACE}€"
        assert formatting.datetime_text(LATE_EVENING_UTC) == "14/03/2026, 22:30"
    assert formatting.money_text(15000, "EUR") == "€150.00"


def test_a_reader_with_no_choices_or_unreadable_ones_gets_the_defaults():
    class Reader:
        language = "xx"
        time_zone = "Mars/Olympus"

    with timezone.override("Asia/Tokyo"), formatting.reader_locale(Reader()):
        assert translation.get_language() == "en"
        assert formatting.datetime_text(LATE_EVENING_UTC) == "15 Mar 2026, 00:30"  # settings.TIME_ZONE, Berlin


@pytest.mark.parametrize(("cents", "text"), [(7550, "75.50"), (1, "0.01"), (123456789, "1234567.89"), (0, "0.00")])
def test_money_for_a_form_field_or_a_csv_cell_has_no_grouping_and_no_float(cents, text):
    # 0.1 + 0.2 style float error would show at the second place of a large amount.
    assert formatting.money_input(cents) == text


def test_a_lot_granted_without_payment_reads_included():
    assert formatting.price_paid_text(0, "EUR") == "Included"
    assert formatting.price_paid_text(15000, "EUR") == "€150.00"


@pytest.mark.parametrize(
    ("zone", "day", "moment", "seconds", "with_zone", "iso"),
    [
        (
            "Europe/Berlin",
            "15 Mar 2026",
            "15 Mar 2026, 00:30",
            "15 Mar 2026, 00:30:05",
            "15 Mar 2026, 00:30 CET",
            "2026-03-15T00:30:05+01:00",
        ),
        (
            "Europe/Lisbon",
            "14 Mar 2026",
            "14 Mar 2026, 23:30",
            "14 Mar 2026, 23:30:05",
            "14 Mar 2026, 23:30 WET",
            "2026-03-14T23:30:05+00:00",
        ),
    ],
)
def test_dates_and_times_read_in_the_viewers_time_zone(zone, day, moment, seconds, with_zone, iso):
    with timezone.override(zone):
        assert formatting.date_text(LATE_EVENING_UTC) == day
        assert formatting.datetime_text(LATE_EVENING_UTC) == moment
        assert formatting.datetime_text(LATE_EVENING_UTC, seconds=True) == seconds
        assert formatting.datetime_text(LATE_EVENING_UTC, zone=True) == with_zone
        assert formatting.iso_date(LATE_EVENING_UTC) == iso[:10]
        assert formatting.iso_datetime(LATE_EVENING_UTC) == iso
        assert formatting.day_month_text(LATE_EVENING_UTC) == day[:-5]


def test_summer_time_is_local_time_too():
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    with timezone.override("Europe/Berlin"):
        assert formatting.datetime_text(summer, zone=True) == "1 Jul 2026, 14:00 CEST"


def test_a_plain_date_is_shown_as_it_is():
    assert formatting.date_text(date(2026, 12, 1)) == "1 Dec 2026"
    assert formatting.iso_date(date(2026, 12, 1)) == "2026-12-01"


@time_machine.travel(datetime(2026, 3, 14, 22, 0, tzinfo=UTC), tick=False)  # 23:00 in Berlin
@pytest.mark.parametrize(
    ("later", "days", "text"),
    [
        (timedelta(minutes=30), 0, "today"),
        (timedelta(hours=1, minutes=30), 1, "tomorrow"),  # 00:30 on the 15th, Berlin's calendar
        (timedelta(days=5), 5, "in 5 days"),
        (-timedelta(days=2), -2, "today"),
    ],
)
def test_days_until_count_the_viewers_calendar_days(later, days, text):
    with timezone.override("Europe/Berlin"):
        moment = timezone.now() + later
        assert formatting.days_until(moment) == days
        assert formatting.until_text(moment) == text


def test_stripes_codes_read_as_words():
    assert formatting.code_text("warning_needs_response") == "warning needs response"
