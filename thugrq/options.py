"""What a submitter may ask of an analysis: the URL and the options, typed and validated.

Both sides use this module: the client before enqueueing, the worker again before running,
because whatever comes out of Redis may have been written by anyone who can reach it.
Options that would touch a worker's files (log dir, output file, rule files, local analysis)
do not exist here on purpose.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from thugrq.config import DEFAULT_ANALYSIS_TIMEOUT
from thugrq.personalities import DEFAULT_PERSONALITY, PERSONALITIES

MAX_URL_LENGTH = 4096
MAX_ANALYSIS_TIMEOUT = 3600
URL_SCHEMES = ("http", "https")


class InvalidInput(ValueError):
    """Input refused before any work is done; the message says what to fix."""


def check_url(url: Any, what: str = "URL") -> str:
    """An absolute http(s) URL with a host, or InvalidInput saying why not."""
    if not isinstance(url, str):
        raise InvalidInput(f"invalid {what}: expected a string, got {type(url).__name__}")
    url = url.strip()
    shown = url if len(url) <= 80 else url[:77] + "..."
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"invalid {what} {shown!r}: longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidInput(f"invalid {what} {shown!r}: it contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise InvalidInput(f"invalid {what} {shown!r}: {error}") from error
    if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname:
        raise InvalidInput(
            f"invalid {what} {shown!r}: give a full http:// or https:// URL, "
            "such as http://example.com/page"
        )
    return url


@dataclasses.dataclass(frozen=True)
class Options:
    """Thug's settings for one analysis."""

    #: Thug browser personality (see `thugrq useragents`).
    useragent: str = DEFAULT_PERSONALITY
    #: Referer header of the first request.
    referer: str | None = None
    #: Thug's analysis timeout in seconds.
    timeout: int = DEFAULT_ANALYSIS_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.useragent, str) or self.useragent not in PERSONALITIES:
            raise InvalidInput(
                f"invalid useragent {self.useragent!r}: choose one of "
                + ", ".join(PERSONALITIES)
            )
        if self.referer is not None:
            check_url(self.referer, what="referer")
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int)
            or not 1 <= self.timeout <= MAX_ANALYSIS_TIMEOUT
        ):
            raise InvalidInput(
                f"invalid timeout {self.timeout!r}: give whole seconds from 1 to "
                f"{MAX_ANALYSIS_TIMEOUT}"
            )

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
        return dataclasses.asdict(self)
