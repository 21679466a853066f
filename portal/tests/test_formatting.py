"""Hours and money are formatted in one place, exactly."""

import pytest

from portal.templatetags.portal_format import duration, hours, money


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(0, "0 h"), (30, "0.5 h"), (50, "0.83 h"), (210, "3.5 h"), (600, "10 h"), (605, "10.08 h"), (-90, "-1.5 h")],
)
def test_hours(minutes, text):
    assert hours(minutes) == text


@pytest.mark.parametrize(("minutes", "text"), [(45, "45 min"), (60, "1 h"), (90, "1 h 30 min"), (0, "0 min")])
def test_duration(minutes, text):
    assert duration(minutes) == text


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [(15000, "EUR", "EUR 150.00"), (5, "EUR", "EUR 0.05"), (123456789, "USD", "USD 1,234,567.89")],
)
def test_money(cents, currency, text):
    assert money(cents, currency) == text
