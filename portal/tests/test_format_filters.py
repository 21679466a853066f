"""The template filters are billing.formatting's functions, seen from a template: the same text, in
the active time zone, and nothing at all for an empty field."""

from datetime import UTC, datetime

from django.template import Context, Template
from django.utils import timezone

MOMENT = datetime(2026, 3, 14, 23, 30, 5, tzinfo=UTC)


def rendered(source, **context):
    return Template("{% load portal_format %}" + source).render(Context(context))


def test_dates_and_times_render_in_the_active_time_zone():
    with timezone.override("Europe/Berlin"):
        text = rendered(
            "{{ m|day }} | {{ m|day_month }} | {{ m|when }} | {{ m|when:'seconds' }} | "
            "{{ m|iso_day }} | {{ m|iso_when }}",
            m=MOMENT,
        )
    assert (
        text
        == "15 Mar 2026 | 15 Mar | 15 Mar 2026, 00:30 | 15 Mar 2026, 00:30:05 | 2026-03-15 | 2026-03-15T00:30:05+01:00"
    )


def test_hours_and_money_render_exactly():
    assert rendered("{{ m|hours }} {{ m|signed_hours }} {{ c|money:'EUR' }}", m=50, c=15000) == "0.83 h +0.83 h €150.00"


def test_an_empty_field_renders_nothing_so_a_default_can_stand_in():
    assert rendered("[{{ m|when }}][{{ m|day|default:'—' }}][{{ m|hours }}]", m=None) == "[][—][]"
