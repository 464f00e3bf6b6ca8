"""The DNS answers an analysis got: which addresses each host name resolved to, and when.

Malicious networks answer DNS differently per country (geo-DNS cloaking) and over time (DNS
rebinding); once the analysis is over, the answers are gone unless they were kept. So while
Thug runs, `Resolutions` wraps the resolver functions of `socket` (getaddrinfo, which urllib3
uses; gethostbyname and gethostbyname_ex, which PySocks uses) and records each name lookup:
the first time a name gets an answer, and again whenever it gets a different one.

Behind a proxy that resolves names itself (socks5h://, http://), the worker learns no answer
for the page: each host name fetched is listed as resolved by the proxy, its addresses unknown
(None) rather than guessed. Lookups the worker makes for itself are left out: the proxy's own
name, and those of threads alive before the analysis began (the worker's, never the page's).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from thugrq.truncation import SUMMARY_ITEMS, Capped

if TYPE_CHECKING:  # only its type: `thugrq result`, which shows entries, needs no PySocks
    from thugrq.proxy import Proxy

WORKER = "worker"
PROXY = "proxy"

#: What a failed lookup records as its `error`, by gaierror code; other codes give the C
#: library's message.
ERRORS = {
    socket.EAI_NONAME: "no such name",
    socket.EAI_AGAIN: "temporary failure",
    socket.EAI_FAIL: "server failure",
}
if hasattr(socket, "EAI_NODATA"):  # glibc only
    ERRORS[socket.EAI_NODATA] = "no address for the name"

Lookup = Callable[..., Any]


class Resolutions:
    """`with Resolutions(proxy) as lookups:` records the name lookups made in the block;
    `lookups.answers(log)` lists them (the proxy's entries added from Thug's `log`), at most
    `limit` entries, the rest counted as dropped (truncation.Capped)."""

    def __init__(self, proxy: Proxy | None = None, limit: int = SUMMARY_ITEMS) -> None:
        self.proxy = proxy
        self.entries = Capped(limit)
        self._last: dict[str, tuple[tuple[str, ...], str | None]] = {}
        self._lock = threading.Lock()
        self._skipped = {proxy.host.lower()} if proxy else set()
        self._worker_threads: set[int | None] = set()
        self._originals: tuple[Lookup, Lookup, Lookup] | None = None

    def __enter__(self) -> Resolutions:
        self._worker_threads = {thread.ident for thread in threading.enumerate()}
        self._worker_threads.discard(threading.get_ident())
        getaddrinfo, gethostbyname, gethostbyname_ex = self._originals = (
            socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex
        )
        socket.getaddrinfo = self._recording(
            getaddrinfo, lambda infos: [info[4][0] for info in infos]
        )
        socket.gethostbyname = self._recording(gethostbyname, lambda address: [address])
        socket.gethostbyname_ex = self._recording(gethostbyname_ex, lambda answer: answer[2])
        return self

    def __exit__(self, *exc: object) -> None:
        # Unlike the connection guard, lifted at once: the document is built after the block,
        # so a lookup by a page thread still running could not be recorded anyway.
        assert self._originals is not None
        socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex = self._originals

    def _recording(self, lookup: Lookup, addresses_of: Callable[[Any], list[str]]) -> Lookup:
        def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
            name = _name(host)
            own = threading.get_ident() in self._worker_threads
            if name is None or name in self._skipped or own:
                return lookup(host, *args, **kwargs)
            try:
                answer = lookup(host, *args, **kwargs)
            except (socket.gaierror, socket.herror) as error:
                self._record(name, (), ERRORS.get(error.errno) or str(error.strerror or error))
                raise
            self._record(name, tuple(sorted(set(map(str, addresses_of(answer))))), None)
            return answer

        return recording

    def _record(self, host: str, addresses: tuple[str, ...], error: str | None) -> None:
        with self._lock:
            if self._last.get(host) == (addresses, error):
                return
            self._last[host] = (addresses, error)
            entry: dict[str, Any] = {
                "host": host, "addresses": list(addresses), "resolved_at": _now(), "resolver": WORKER,
            }
            if error:
                entry["error"] = error
            self.entries.append(entry)

    def answers(self, log: dict[str, Any] | None) -> Capped:
        """What the analysis resolved, and, behind a proxy that resolves names, each host name
        of the URLs Thug fetched (`log`: its JSON log) as resolved by the proxy."""
        with self._lock:
            answers = Capped(self.entries.limit)
            answers.dropped = self.entries.dropped
            for entry in self.entries:
                answers.append(entry)
        if self.proxy is not None and self.proxy.remote_dns:
            for host in dict.fromkeys(_fetched_hosts(log or {})):
                answers.append(
                    {"host": host, "addresses": None, "resolved_at": None, "resolver": PROXY}
                )
        return answers


def _name(host: Any) -> str | None:
    """The host name looked up, lower case; None for no host or an address literal."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str) or not host:
        return None
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host.lower()
    return None


def _fetched_hosts(log: dict[str, Any]) -> Iterable[str]:
    """The host names (never address literals) of the locations and connections Thug logged."""
    for key, fields in (("locations", ("url",)), ("connections", ("source", "destination"))):
        for entry in log.get(key) or []:
            for field in fields:
                url = entry.get(field) if isinstance(entry, dict) else None
                try:
                    name = _name(urlsplit(url).hostname) if isinstance(url, str) else None
                except ValueError:  # a URL Thug logged that does not parse
                    continue
                if name:
                    yield name


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
