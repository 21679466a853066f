"""What a crawler finds on a page: the forms a browser would submit, with the values it would send,
and the query parameters of the page's links; so a test can send each of them malformed."""

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote_plus, urljoin, urlsplit


@dataclass
class Form:
    method: str  # "GET" or "POST"
    action: str  # path and query string it submits to
    fields: list = field(default_factory=list)  # [(name, value)] as a browser fills the form in
    names: set = field(default_factory=set)  # every field's name, unticked boxes and buttons too

    def body_with(self, name, encoded):
        """The form's urlencoded body with `name` set to `encoded` (already percent-encoded) instead."""
        kept = [f"{quote_plus(key)}={quote_plus(value)}" for key, value in self.fields if key != name]
        return "&".join([*kept, f"{quote_plus(name)}={encoded}"])


def page_forms(html, url):
    """The forms of a page served at `url`, each with what it submits."""
    parser = _PageParser(url)
    parser.feed(html)
    return parser.forms


def link_parameters(html, url):
    """The names of the query parameters in the page's links (and HTMX requests) back to `url`'s path."""
    parser = _PageParser(url)
    parser.feed(html)
    path = urlsplit(url).path
    return {
        name
        for link in parser.links
        if urlsplit(link).path == path
        for name, _ in parse_qsl(urlsplit(link).query, keep_blank_values=True)
    }


class _PageParser(HTMLParser):
    LINKS = ("href", "hx-get", "hx-post")

    def __init__(self, url):
        super().__init__(convert_charrefs=True)
        self.url = url
        self.forms = []
        self.links = []
        self._form = None
        self._select = None  # (name, options [(value, selected)])
        self._textarea = None  # (name, text parts)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [urljoin(self.url, attrs[name]) for name in self.LINKS if attrs.get(name)]
        if tag == "form":
            action = attrs.get("action") or attrs.get("hx-post") or attrs.get("hx-get") or self.url
            method = "POST" if attrs.get("hx-post") else (attrs.get("method") or "GET").upper()
            self._form = Form(method=method, action=_path(urljoin(self.url, action)))
            self.forms.append(self._form)
        elif tag == "option" and self._select:
            self._select[1].append((attrs.get("value", ""), "selected" in attrs))
        elif self._form is None or not attrs.get("name"):
            return
        elif tag == "input":
            self._input(attrs)
        elif tag == "button":
            self._form.names.add(attrs["name"])
        elif tag == "select":
            self._select = (attrs["name"], [])
        elif tag == "textarea":
            self._textarea = (attrs["name"], [])

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def _input(self, attrs):
        name, kind = attrs["name"], attrs.get("type", "text")
        self._form.names.add(name)
        if kind in {"submit", "button", "image", "file"}:
            return
        if kind in {"checkbox", "radio"} and "checked" not in attrs:
            return
        self._form.fields.append((name, attrs.get("value") or ("on" if kind == "checkbox" else "")))

    def handle_data(self, data):
        if self._textarea:
            self._textarea[1].append(data)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "textarea" and self._textarea and self._form:
            name, text = self._textarea
            self._form.names.add(name)
            self._form.fields.append((name, "".join(text)))
            self._textarea = None
        elif tag == "select" and self._select and self._form:
            self._select_done()

    def _select_done(self):
        name, options = self._select
        self._form.names.add(name)
        # Nothing (or the empty choice) selected: a crawler picks the first real choice, so that what
        # depends on it is reached (the admin's action on the selected rows).
        chosen = [value for value, selected in options if selected and value]
        chosen = chosen or [value for value, _ in options if value][:1]
        self._form.fields += [(name, value) for value in chosen]
        self._select = None


def _path(url):
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path
