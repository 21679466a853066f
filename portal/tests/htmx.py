"""What an answer tells HTMX to do, read back from django-htmx's headers."""

import json


def client_events(response):
    """The names of the events the answer triggers in the page (HX-Trigger), as a set."""
    return set(json.loads(response["HX-Trigger"])) if "HX-Trigger" in response else set()


def client_redirect(response):
    """Where the answer sends the browser for a full page load (HX-Redirect), or None."""
    return response.headers.get("HX-Redirect")
