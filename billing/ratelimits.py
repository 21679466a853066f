"""Counting requests against the limits of PORTAL_RATE_LIMITS (django-ratelimit's fixed windows in
the default cache: Redis when REDIS_URL is set, so every process shares one count).

Addresses are read as allauth reads them (portal.ratelimits.client_address, RATELIMIT_IP_META_KEY):
behind TRUSTED_PROXY_COUNT proxies, from X-Forwarded-For. A cache that cannot be reached counts
nothing: a Redis outage must not stop payments or Stripe's webhooks, it only lifts the limits
until Redis is back (and is logged)."""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django_ratelimit.core import get_usage

logger = logging.getLogger(__name__)


def seconds_over_limit(request, group, *, increment=True):
    """Count this request against each of the group's limits; 0 while it is within all of them,
    else the seconds until the longest-blocked window ends. Every limit counts the request, even
    after one of them is over."""
    waits = [0]
    for key, rate in settings.PORTAL_RATE_LIMITS[group].items():
        try:
            usage = get_usage(request, group=group, key=key, rate=rate, increment=increment)
        except PermissionDenied:
            logger.warning("Rate limit %s (%s) not counted: the request has no client address.", group, key)
            continue
        except Exception:
            logger.exception("Rate limit %s (%s) could not be counted: the cache did not answer.", group, key)
            continue
        if usage and usage["should_limit"]:
            waits.append(max(usage["time_left"], 1))
    return max(waits)
