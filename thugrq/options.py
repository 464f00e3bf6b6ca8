"""What a submitter may ask of an analysis: the URL and Thug's options, typed and validated.

Both sides use this module: the client before enqueueing, the worker again before running,
because whatever comes out of Redis may have been written by anyone who can reach it.
Each option is declared once, as a field of `Options`, with its type, bounds, help text and the
ThugAPI call that applies it; the CLI flags and `thugrq options` are generated from the same
declarations. Options that would touch a worker's files (log dir, output file, rule files,
local-file analysis, MongoDB or Elasticsearch targets) do not exist here on purpose.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from thugrq.defaults import (
    DEFAULT_ANALYSIS_TIMEOUT,
    MAX_ANALYSIS_TIMEOUT,
    MAX_DOWNLOAD_BYTES,
    MAX_RESPONSE_BYTES,
    MIB,
)
from thugrq.exceptions import InvalidInput
from thugrq.personalities import DEFAULT_PERSONALITY, PERSONALITIES

MAX_URL_LENGTH = 4096
URL_SCHEMES = ("http", "https")
PROXY_SCHEMES = ("http", "socks4", "socks5", "socks5h")
EVENT_NAME = re.compile(r"^[a-z]{1,32}$")
MAX_EVENTS = 32
VERSION = re.compile(r"^\d{1,5}(\.\d{1,6}){0,3}$")


def shown(value: str) -> str:
    """`value` cut to fit in one line of an error message."""
    return value if len(value) <= 80 else value[:77] + "..."


def check_url(url: Any, what: str = "URL") -> str:
    """An absolute http(s) URL with a host, or InvalidInput saying why not."""
    if not isinstance(url, str):
        raise InvalidInput(f"invalid {what}: expected a string, got {type(url).__name__}")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"invalid {what} {shown(url)!r}: longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidInput(f"invalid {what} {shown(url)!r}: it contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise InvalidInput(f"invalid {what} {shown(url)!r}: {error}") from error
    if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname:
        raise InvalidInput(
            f"invalid {what} {shown(url)!r}: give a full http:// or https:// URL, "
            "such as http://example.com/page"
        )
    return url


# Checks for single option values: each returns None or raises InvalidInput naming the option.


def _personality(name: str, value: Any) -> None:
    if not isinstance(value, str) or value not in PERSONALITIES:
        raise InvalidInput(
            f"invalid {name} {value!r}: choose one of {', '.join(PERSONALITIES)} "
            "(thugrq useragents describes them)"
        )


def _url(name: str, value: Any) -> None:
    check_url(value, what=name)


def _proxy(name: str, value: Any) -> None:
    # Thug calls sys.exit() on a proxy scheme it does not know: refuse it here first.
    problem = None
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        problem = "expected a short string"
    else:
        try:
            parts = urlsplit(value)
            if parts.scheme.lower() not in PROXY_SCHEMES:
                problem = f"the scheme must be one of {', '.join(PROXY_SCHEMES)}"
            elif not parts.hostname or not parts.port:
                problem = "give scheme://[user:password@]host:port"
            elif parts.path not in ("", "/") or parts.query or parts.fragment:
                problem = "a proxy URL has no path, query or fragment"
        except ValueError as error:
            problem = str(error)
    if problem:
        raise InvalidInput(f"invalid {name} {value!r}: {problem}")


def _events(name: str, value: Any) -> None:
    if (
        not isinstance(value, (list, tuple))
        or len(value) > MAX_EVENTS
        or not all(isinstance(event, str) and EVENT_NAME.match(event) for event in value)
    ):
        raise InvalidInput(
            f"invalid {name} {value!r}: give up to {MAX_EVENTS} DOM event names "
            "such as click,mouseover"
        )


def _version(name: str, value: Any) -> None:
    if not isinstance(value, str) or not VERSION.match(value):
        raise InvalidInput(f"invalid {name} {value!r}: give a version such as 10.0.64.0")


def whole_number(low: int, high: int) -> Callable[[str, Any], None]:
    """A check for an int from `low` to `high`; a bool is refused, though Python counts it one."""

    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"invalid {name} {value!r}: give a whole number from {low} to {high}")

    check.bounds = (low, high)  # type: ignore[attr-defined] - read by the CLI for IntRange
    return check


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidInput(f"invalid {name} {value!r}: expected true or false")


def option(
    default: Any,
    kind: type,
    help: str,
    thug: str | tuple[str, str] | None,
    check: Callable[[str, Any], None] | None = None,
    metavar: str | None = None,
) -> Any:
    """Declare an option: `thug` names the ThugAPI method that applies a value (for a switch,
    the method called when it is on, or an (on, off) pair; None for thugrq's own bounds);
    `check` validates non-None values."""
    return dataclasses.field(
        default=tuple(default) if isinstance(default, list) else default,
        metadata={
            "kind": kind,
            "help": help,
            "thug": thug,
            "check": check or (_flag if kind is bool else None),
            "metavar": metavar,
        },
    )


@dataclasses.dataclass(frozen=True)
class Options:
    """Thug's settings for one analysis. None means Thug's own default."""

    useragent: str = option(
        DEFAULT_PERSONALITY, str, "Browser personality (thugrq useragents).", "set_useragent",
        _personality, "NAME",
    )
    referer: str | None = option(None, str, "Referer of the first request.", "set_referer", _url, "URL")
    proxy: str | None = option(
        None, str, "Proxy: scheme://[user:password@]host:port, scheme http, socks4, socks5 or "
        "socks5h.", "set_proxy", _proxy, "URL",
    )
    events: tuple[str, ...] = option(
        (), list, "DOM events to fire, comma-separated (click,mouseover).", "set_events", _events,
        "EVENTS",
    )
    delay: int | None = option(
        None, int, "Longest setTimeout/setInterval delay honoured, in ms.", "set_delay",
        whole_number(0, 600_000), "MS",
    )
    threshold: int | None = option(
        None, int, "Most pages to fetch.", "set_threshold", whole_number(1, 10_000), "N"
    )
    extensive: bool = option(False, bool, "Fetch linked pages too.", "set_extensive")
    timeout: int = option(
        DEFAULT_ANALYSIS_TIMEOUT, int, "Analysis timeout, in seconds.", "set_timeout",
        whole_number(1, MAX_ANALYSIS_TIMEOUT), "SECONDS",
    )
    connect_timeout: int | None = option(
        None, int, "Connect timeout, in seconds (Thug: 10).", "set_connect_timeout",
        whole_number(1, 300), "SECONDS",
    )
    proxy_connect_timeout: int | None = option(
        None, int, "Proxy connect timeout, in seconds (Thug: 5).", "set_proxy_connect_timeout",
        whole_number(1, 300), "SECONDS",
    )
    broken_url: bool = option(False, bool, "Broken-URL mode: fix malformed URLs.", "set_broken_url")
    web_tracking: bool = option(False, bool, "Inspect web client tracking.", "set_web_tracking")
    async_prefetch: bool = option(False, bool, "Prefetch resources asynchronously.", "set_async_prefetch")
    adobepdf: str | None = option(
        None, str, "Adobe Acrobat Reader version (Thug: 9.1.0).", "set_acropdf_pdf", _version, "VERSION"
    )
    no_adobepdf: bool = option(False, bool, "Disable the Adobe Acrobat Reader plugin.", "disable_acropdf")
    shockwave: str | None = option(
        None, str, "Shockwave Flash version (Thug: 10.0.64.0).", "set_shockwave_flash", _version,
        "VERSION",
    )
    no_shockwave: bool = option(False, bool, "Disable the Shockwave Flash plugin.", "disable_shockwave_flash")
    javaplugin: str | None = option(
        None, str, "Java plugin version (Thug: 1.6.0.32).", "set_javaplugin", _version, "VERSION"
    )
    no_javaplugin: bool = option(False, bool, "Disable the Java plugin.", "disable_javaplugin")
    silverlight: str | None = option(
        None, str, "Silverlight version (Thug: 4.0.50826.0).", "set_silverlight", _version, "VERSION"
    )
    no_silverlight: bool = option(False, bool, "Disable the Silverlight plugin.", "disable_silverlight")
    code_logging: bool = option(
        True, bool, "Keep page contents and code snippets in the log.",
        ("enable_code_logging", "disable_code_logging"),
    )
    cert_logging: bool = option(
        True, bool, "Log the TLS certificates of HTTPS sites.",
        ("enable_cert_logging", "disable_cert_logging"),
    )
    max_response_bytes: int = option(
        8 * MIB, int, "Largest response body read; a larger one is abandoned (summary.limited).",
        None, whole_number(1024, MAX_RESPONSE_BYTES), "BYTES",
    )
    max_download_bytes: int = option(
        32 * MIB, int, "Most bytes read over the whole analysis; later fetches are abandoned.",
        None, whole_number(1024, MAX_DOWNLOAD_BYTES), "BYTES",
    )

    def __post_init__(self) -> None:
        if isinstance(self.events, list):  # JSON has no tuples
            object.__setattr__(self, "events", tuple(self.events))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            check = field.metadata["check"]
            if value is not None and check:
                check(field.name, value)
            elif value is None and field.default is not None:
                raise InvalidInput(f"invalid {field.name}: it cannot be empty")

    @classmethod
    def from_dict(cls, data: Any) -> Options:
        """Options from their JSON form; unknown names and wrong types are refused."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"invalid options: expected an object, got {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(str(name) for name in data if name not in known)
        if unknown:
            raise InvalidInput(
                f"unknown option(s) {', '.join(unknown)}: allowed are {', '.join(sorted(known))}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every option, defaults included, so a result shows what was used."""
        return {name: list(v) if isinstance(v, tuple) else v for name, v in self._items()}

    def _items(self) -> Iterator[tuple[str, Any]]:
        for field in dataclasses.fields(self):
            yield field.name, getattr(self, field.name)

    def apply(self, thug: Any) -> None:
        """Set these options on a ThugAPI instance; None and switched-off values leave Thug's
        defaults alone."""
        for field in dataclasses.fields(self):
            value, method = getattr(self, field.name), field.metadata["thug"]
            if method is None:  # applied by thugrq (thugrq.limits), not by Thug
                continue
            if isinstance(method, tuple):  # an (on, off) pair
                getattr(thug, method[0] if value else method[1])()
            elif field.metadata["kind"] is bool:
                if value:
                    getattr(thug, method)()
            elif field.metadata["kind"] is list:
                if value:
                    getattr(thug, method)(",".join(value))
            elif value is not None:
                getattr(thug, method)(value)


def describe() -> list[dict[str, Any]]:
    """Every option with its type, default and help, as `thugrq options` lists them."""
    return [
        {
            "name": field.name,
            "type": {bool: "boolean", int: "integer", str: "string", list: "list"}[
                field.metadata["kind"]
            ],
            "default": list(field.default) if isinstance(field.default, tuple) else field.default,
            "help": field.metadata["help"],
        }
        for field in dataclasses.fields(Options)
    ]
