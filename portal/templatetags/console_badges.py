"""The console's status badge as a filter: {{ payment|status_badge }}."""

from django import template

from portal.console import badges

register = template.Library()


@register.filter
def status_badge(record):
    return badges.status_badge(record)
