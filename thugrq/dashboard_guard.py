"""What keeps the dashboard acting only for the analyst looking at it, whatever Redis holds.

- Host allowlist (`check_host`): the dashboard answers only the names it serves (any address
  too on a wildcard bind: an address cannot be rebound). Otherwise a web page whose name the
  attacker rebinds to 127.0.0.1 (DNS rebinding) could read it, and drive it, through the
  analyst's browser.
- State changes (`check_state_change`): a route that changes state answers POST only (one of
  rq-dashboard's also answers GET), and only from the dashboard's own pages: the request's
  Origin, or its Referer when it has no Origin, must be the dashboard's own (CSRF). A page
  with a form says so by its Referrer-Policy (`FORM_REFERRER_POLICY`), else the browser would
  post it with `Origin: null`.
- A strict Content-Security-Policy on every response (`secure_headers`): scripts only from the
  dashboard, no eval, no inline script but the page's own, so that markup a page inserts from
  Redis runs nothing even where escaping missed it, and forms submit to the dashboard only
  (its submit form, thugrq.submit_form, served with credentials). rq-dashboard's pages compile
  underscore templates in the browser with `new Function`, which that policy forbids: each
  page gets its templates compiled here (`compile_template`, underscore's own compiler in
  Python) in an inline script that, like the page's own, the policy allows by its SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Callable, Collection, Iterator
from urllib.parse import urlsplit

from flask import Response, request
from jinja2.utils import htmlsafe_json_dumps
from werkzeug.exceptions import MethodNotAllowed

#: A Host's (name, port); port None (an --allowed-host without one) means any port.
HostKey = tuple[str, int | None]
#: As a name in accepted hosts: any IP address (a wildcard bind's). Never a name: an address
#: cannot be rebound, so a Host that is one is the site the browser meant.
ANY_ADDRESS = "*"

HOST = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?", re.I)
DEFAULT_PORT = 80  # the dashboard speaks plain HTTP: a Host without a port means 80
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

POLICY = (
    "default-src 'none'; script-src 'self'{hashes}; style-src 'self'; "
    # rq-dashboard's markup has style attributes (hidden buttons, floats); no <style> elements.
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
#: The Referrer-Policy of a page whose form POSTs to the dashboard: under no-referrer a browser
#: sends such a POST with `Origin: null` (Chromium does), which `check_state_change` refuses;
#: same-origin sends the page's origin to the dashboard itself, and nothing to any other site.
FORM_REFERRER_POLICY = "same-origin"

#: The script elements of rq-dashboard's own markup (Jinja escapes every value put in it, so a
#: value cannot open or close one).
SCRIPT = re.compile(r"<script(?P<attributes>[^>]*)>(?P<text>.*?)</script>", re.S)
JAVASCRIPT = "text/javascript"
SCRIPT_ATTRIBUTE = re.compile(r'\b(?P<name>src|type|name)\s*=\s*"(?P<value>[^"]*)"')

#: underscore 1.13's default template settings, tried in its order: escape, interpolate, evaluate.
TEMPLATE_TAG = re.compile(r"<%-([\s\S]+?)%>|<%=([\s\S]+?)%>|<%([\s\S]+?)%>")
#: What underscore escapes in a template's text to put it in a JavaScript string literal.
LITERAL_ESCAPES = {"'": "'", "\\": "\\", "\r": "r", "\n": "n", "\u2028": "u2028", "\u2029": "u2029"}
LITERAL_SPECIAL = re.compile("['\\\\\r\n\u2028\u2029]")
#: Replaces underscore's `_.template` on a page: the page's template texts, compiled beforehand.
TEMPLATES_SCRIPT = """
(function () {
    var compiled = {%s};
    var byText = new Map();
    document.querySelectorAll('script[type="text/template"]').forEach(function (element) {
        byText.set(element.innerHTML, compiled[element.getAttribute("name")]);
    });
    _.template = function (text) {
        if (!byText.get(text)) { throw new Error("thugrq: no template compiled for " + text); }
        return byText.get(text);
    };
})();
"""


def host_key(value: str) -> HostKey:
    """(name, port) of a Host header or an --allowed-host entry: NAME, NAME:PORT, [IPv6]:PORT.

    ValueError for anything else.
    """
    match = HOST.fullmatch(value)
    if not match:
        raise ValueError(f"not a host name, or a name and port: {value!r}")
    return match["name"].strip("[]").lower(), int(match["port"]) if match["port"] else None


def is_address(name: str) -> bool:
    """Whether a Host's name is an IP address (which no DNS answer can make another site's)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def accepts(accepted: Collection[HostKey], given: str) -> bool:
    """Whether the Host header `given` is among `accepted`."""
    try:
        name, port = host_key(given)
    except ValueError:
        return False
    names = (name, ANY_ADDRESS) if is_address(name) else (name,)
    ports = (port or DEFAULT_PORT, None)
    return any((each, each_port) in accepted for each in names for each_port in ports)


def check_host(accepted: Collection[HostKey]) -> Callable[[], Response | None]:
    """A before-request hook answering 400 to a Host that is not among `accepted`."""

    def check() -> Response | None:
        given = request.headers.get("Host", "")
        if accepts(accepted, given):
            return None
        return Response(
            f"thugrq dashboard: refusing the Host {given!r}: it answers only the names it serves "
            "(add one with --allowed-host or THUGRQ_DASHBOARD_ALLOWED_HOSTS)\n",
            400, mimetype="text/plain",
        )

    return check


def from_own_page() -> bool:
    """Whether the request's Origin (or Referer, without an Origin) is the dashboard's host.

    Scheme aside: TLS may end at a proxy in front of the dashboard.
    """
    source = request.headers.get("Origin") or request.headers.get("Referer")
    return bool(source) and urlsplit(source).netloc.lower() == request.host.lower()


def check_state_change() -> Response | None:
    """A before-request hook: a route that changes state (one that takes POST) answers POST
    only, and a request that may change state only when it comes from the dashboard's pages."""
    rule = request.url_rule
    if rule is not None and "POST" in (rule.methods or ()) and request.method != "POST":
        raise MethodNotAllowed(valid_methods=["POST"])
    if request.method in SAFE_METHODS or from_own_page():
        return None
    return Response(
        "thugrq dashboard: refusing a change that does not come from the dashboard's own pages "
        "(its Origin, or Referer, is another site's or missing)\n",
        403, mimetype="text/plain",
    )


def compile_template(text: str) -> str:
    """underscore's `_.template(text).source`: the function the browser would build from `text`
    with `new Function`, as JavaScript source."""

    def literal(part: str) -> str:
        return LITERAL_SPECIAL.sub(lambda special: "\\" + LITERAL_ESCAPES[special[0]], part)

    source, index = "__p+='", 0
    for match in TEMPLATE_TAG.finditer(text):
        source += literal(text[index:match.start()])
        index = match.end()
        escape, interpolate, evaluate = match.groups()
        if escape:
            source += f"'+\n((__t=({escape}))==null?'':_.escape(__t))+\n'"
        elif interpolate:
            source += f"'+\n((__t=({interpolate}))==null?'':__t)+\n'"
        else:
            source += f"';\n{evaluate}\n__p+='"
    source += literal(text[index:]) + "';\n"
    return (
        "function(obj){\nvar __t,__p='',__j=Array.prototype.join,"
        "print=function(){__p+=__j.call(arguments,'');};\n"
        f"with(obj||{{}}){{\n{source}}}\nreturn __p;\n}}"
    )


def page_scripts(page: str) -> Iterator[tuple[re.Match[str], dict[str, str]]]:
    """The script elements of a page of rq-dashboard's, with their src, type and name."""
    for script in SCRIPT.finditer(page):
        found = SCRIPT_ATTRIBUTE.finditer(script["attributes"])
        yield script, {attribute["name"]: attribute["value"] for attribute in found}


def page_templates(page: str) -> dict[str, str]:
    """The underscore templates of a page of rq-dashboard's, by name: their text."""
    return {
        attributes["name"]: script["text"]
        for script, attributes in page_scripts(page)
        if attributes.get("type") == "text/template" and "name" in attributes
    }


def compile_page(page: str) -> tuple[str, list[str]]:
    """`page` with its templates compiled in a script before its own inline one, and the texts
    of the inline scripts it then has (the policy allows those)."""
    inline = [
        script for script, attributes in page_scripts(page)
        if "src" not in attributes and attributes.get("type", JAVASCRIPT) == JAVASCRIPT
    ]
    if not inline:
        return page, []
    compiled = ",".join(
        f"{htmlsafe_json_dumps(name)}: {compile_template(text)}"
        for name, text in page_templates(page).items()
    )
    templates = TEMPLATES_SCRIPT % compiled
    start = inline[0].start()
    page = f"{page[:start]}<script>{templates}</script>{page[start:]}"
    return page, [templates, *(script["text"] for script in inline)]


def script_hash(text: str) -> str:
    """The CSP source that allows an inline script with this text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def secure_headers(response: Response) -> Response:
    """An after-request hook: the policy (allowing an HTML page's own scripts), nosniff, no
    Referer sent (but a form's page's to the dashboard itself: `FORM_REFERRER_POLICY`), no
    framing."""
    scripts: list[str] = []
    if response.mimetype == "text/html" and not response.direct_passthrough:
        page, scripts = compile_page(response.get_data(as_text=True))
        response.set_data(page)
    hashes = "".join(f" {script_hash(text)}" for text in scripts)
    response.headers["Content-Security-Policy"] = POLICY.format(hashes=hashes)
    form_page = response.headers.get("Referrer-Policy") == FORM_REFERRER_POLICY
    response.headers.update(HEADERS)
    if form_page:  # the one policy a page may keep (thugrq.submit_form's)
        response.headers["Referrer-Policy"] = FORM_REFERRER_POLICY
    return response
