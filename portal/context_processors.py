from django.conf import settings

REAL_STRIPE_JS = "https://js.stripe.com/"


def stripe(request):
    """What pages need to load Stripe.js: its URL and the publishable key (never the secret one)."""
    return {
        "STRIPE_JS_URL": settings.STRIPE_JS_URL,
        "STRIPE_JS_IS_STAND_IN": not settings.STRIPE_JS_URL.startswith(REAL_STRIPE_JS),
        "STRIPE_PUBLISHABLE_KEY": settings.STRIPE_PUBLISHABLE_KEY,
    }
