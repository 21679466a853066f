"""The site's routes read from the URL resolver, so access tests cover every route there is,
including the next one someone adds."""

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, reverse


@dataclass(frozen=True)
class Route:
    name: str  # "console:payment"
    view: object
    ids: tuple  # the names of the route's path arguments, e.g. ("payment_id",)

    def url(self, ids):
        """The route's URL with each path argument taken from `ids` ({"payment_id": 7, ...})."""
        return reverse(self.name, kwargs={name: ids[name] for name in self.ids})


def routes(namespace):
    """Every named route of a URL namespace ("console", "student"), by name."""
    found = []

    def walk(patterns, current):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, entry.namespace or current)
            elif isinstance(entry, URLPattern) and current == namespace and entry.name:
                ids = tuple(getattr(entry.pattern, "converters", {}))
                found.append(Route(f"{namespace}:{entry.name}", entry.callback, ids))

    walk(get_resolver().url_patterns, None)
    return sorted(found, key=lambda route: route.name)


def request(client, route, ids, method, **extra):
    return getattr(client, method.lower())(route.url(ids), **extra)


def accepted_method(client, route, ids):
    """GET if the route answers it (anything but 405), else POST: the method a route is used with."""
    return "POST" if request(client, route, ids, "GET").status_code == 405 else "GET"
