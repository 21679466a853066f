"""The Content Security Policy (django-csp's settings): everything from our own origin, never
inline code, plus the origins Stripe.js needs, which follow STRIPE_JS_URL.

Real Stripe.js loads from js.stripe.com, runs its card fields and 3-D Secure in frames from
js.stripe.com and hooks.stripe.com, and calls api.stripe.com. The offline stand-in (localstripe)
serves its script and answers its calls from the one origin of STRIPE_JS_URL.
"""

from urllib.parse import urlsplit

from csp.constants import NONE, SELF

REAL_STRIPE_JS = "https://js.stripe.com/"
REAL_STRIPE_JS_ORIGIN = "https://js.stripe.com"
# Stripe's integration security guide also names its subdomains, from which newer Stripe.js builds load.
REAL_STRIPE_JS_SUBDOMAINS = "https://*.js.stripe.com"
REAL_STRIPE_HOOKS_ORIGIN = "https://hooks.stripe.com"
REAL_STRIPE_API_ORIGIN = "https://api.stripe.com"


def stripe_js_is_stand_in(stripe_js_url):
    return not stripe_js_url.startswith(REAL_STRIPE_JS)


def content_security_policy(*, stripe_js_url):
    """The CONTENT_SECURITY_POLICY setting for pages that load Stripe.js from `stripe_js_url`."""
    if stripe_js_is_stand_in(stripe_js_url):
        parts = urlsplit(stripe_js_url)
        stand_in = f"{parts.scheme}://{parts.netloc}"
        script_origins, frame_origins, api_origins = [stand_in], [stand_in], [stand_in]
    else:
        script_origins = [REAL_STRIPE_JS_ORIGIN, REAL_STRIPE_JS_SUBDOMAINS]
        frame_origins = [REAL_STRIPE_JS_ORIGIN, REAL_STRIPE_JS_SUBDOMAINS, REAL_STRIPE_HOOKS_ORIGIN]
        api_origins = [REAL_STRIPE_API_ORIGIN]
    return {
        "DIRECTIVES": {
            "default-src": [SELF],
            "script-src": [SELF, *script_origins],
            "frame-src": frame_origins,
            "connect-src": [SELF, *api_origins],
            "img-src": [SELF, "data:"],  # allauth shows the TOTP set-up QR code as a data: URL
            "style-src": [SELF],
            "object-src": [NONE],
            "base-uri": [SELF],
            "form-action": [SELF],
            "frame-ancestors": [NONE],
        }
    }
