"""The proxy a worker sends its traffic through: a SOCKS5 or HTTP CONNECT exit, usually in
another country than the worker's host.

Most teams cannot place a host in every country; they rent proxies there. A worker given one
(`thugrq-worker --proxy`) sends every fetch of its analyses through it, and its location lookup
too (thugrq.geo, DNS over TCP through a tunnel), so that the country it serves is the exit's.

Credentials never travel on a command line (`ps` shows it to every user of the host): they come
from THUGRQ_PROXY_USERNAME and THUGRQ_PROXY_PASSWORD, and only `Proxy.url` (given to Thug,
never logged) holds them; `str(proxy)` shows the proxy without them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import socks

from thugrq.exceptions import InvalidInput

USERNAME_VARIABLE = "THUGRQ_PROXY_USERNAME"
PASSWORD_VARIABLE = "THUGRQ_PROXY_PASSWORD"
#: Scheme: (PySocks proxy type, whether the proxy resolves host names).
SCHEMES = {
    "socks5": (socks.SOCKS5, False),
    "socks5h": (socks.SOCKS5, True),
    "http": (socks.HTTP, True),
}
#: Seconds `Proxy.probe` waits for the proxy to take a connection.
PROBE_TIMEOUT = 3.0
#: The reason an analysis or a lookup whose proxy failed gives.
UNREACHABLE = "proxy unreachable"


class ProxyError(OSError):
    """The proxy refused or dropped a tunnel, or could not be reached."""


@dataclass(frozen=True)
class Proxy:
    scheme: str
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, value: str, environ: Mapping[str, str] = os.environ) -> Proxy:
        """`socks5://HOST:PORT`, `socks5h://HOST:PORT` or `http://HOST:PORT`; credentials from
        the environment. InvalidInput says what to fix."""
        try:
            parts = urlsplit(value.strip())
            port = parts.port
        except ValueError as error:
            raise InvalidInput(f"invalid proxy {value!r}: {error}") from error
        if parts.scheme.lower() not in SCHEMES:
            raise InvalidInput(
                f"invalid proxy {value!r}: use socks5://, socks5h:// or http:// HOST:PORT"
            )
        if parts.username is not None or parts.password is not None:
            raise InvalidInput(
                f"proxy credentials must not be given in the URL (any user of this host can read "
                f"a command line): set {USERNAME_VARIABLE} and {PASSWORD_VARIABLE} instead"
            )
        if not parts.hostname or port is None or parts.path.strip("/") or parts.query:
            raise InvalidInput(f"invalid proxy {value!r}: give SCHEME://HOST:PORT and nothing more")
        username = environ.get(USERNAME_VARIABLE) or None
        password = environ.get(PASSWORD_VARIABLE) or None
        if (username is None) != (password is None):
            raise InvalidInput(f"set both {USERNAME_VARIABLE} and {PASSWORD_VARIABLE}, or neither")
        return cls(parts.scheme.lower(), parts.hostname, port, username, password)

    def __str__(self) -> str:
        """The proxy as logs, fleet records and results show it: never its credentials."""
        return f"{self.scheme}://{_host(self.host)}:{self.port}"

    @property
    def url(self) -> str:
        """The proxy with its credentials, for Thug (requests): never to be shown."""
        if self.username is None:
            return str(self)
        credentials = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}"
        return f"{self.scheme}://{credentials}@{_host(self.host)}:{self.port}"

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy, not the worker, resolves the host names of what is fetched."""
        return SCHEMES[self.scheme][1]

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear anywhere the proxy is shown."""
        return tuple(secret for secret in (self.username, self.password) if secret)

    def probe(self, timeout: float = PROBE_TIMEOUT) -> str | None:
        """Why the proxy takes no connection now, or None: a TCP connect, nothing sent (cheap
        enough before every country job)."""
        try:
            socket.create_connection((self.host, self.port), timeout=timeout).close()
        except OSError as error:
            return error.strerror or str(error) or type(error).__name__
        return None

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to `host`:`port` through the proxy (a SOCKS5 CONNECT, or an HTTP
        CONNECT); ProxyError when the proxy is out of reach or refuses."""
        kind, _ = SCHEMES[self.scheme]
        try:
            return socks.create_connection(
                (host, port), timeout=timeout, proxy_type=kind, proxy_addr=self.host,
                proxy_port=self.port, proxy_rdns=self.remote_dns,
                proxy_username=self.username, proxy_password=self.password,
            )
        except (socks.ProxyError, OSError) as error:
            raise ProxyError(f"{UNREACHABLE}: {self} ({_reason(error)})") from error


def _host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _reason(error: BaseException) -> str:
    """PySocks' message, less anything it quotes of the proxy's own reply."""
    message = getattr(error, "msg", None) or str(error) or type(error).__name__
    return str(message).splitlines()[0][:200]
