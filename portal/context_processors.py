from django.conf import settings

from portal.content_security import stripe_js_is_stand_in


def stripe(request):
    """What pages need to load Stripe.js: its URL and the publishable key (never the secret one)."""
    return {
        "STRIPE_JS_URL": settings.STRIPE_JS_URL,
        "STRIPE_JS_IS_STAND_IN": stripe_js_is_stand_in(settings.STRIPE_JS_URL),
        "STRIPE_PUBLISHABLE_KEY": settings.STRIPE_PUBLISHABLE_KEY,
    }
