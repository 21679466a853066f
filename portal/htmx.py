"""What every page that answers HTMX shares: the Vary header that keeps a page and its fragments
apart in any cache. Responses tell HTMX what to do through django-htmx's helpers
(trigger_client_event, retarget, reswap, HttpResponseClientRedirect), never raw HX-* headers."""

from functools import wraps

from django.utils.cache import patch_vary_headers

# A view answers a whole page or one of its fragments, chosen by these request headers.
HTMX_REQUEST_HEADERS = ("HX-Request", "HX-Target")


def varies_on_htmx(view):
    """Mark a view whose answer depends on request.htmx, and send `Vary: HX-Request, HX-Target`."""

    @wraps(view)
    def varying(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        patch_vary_headers(response, HTMX_REQUEST_HEADERS)
        return response

    varying.varies_on_htmx = True
    return varying
