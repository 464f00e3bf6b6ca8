"""Which addresses an analysis may reach: public ones only, unless the worker allows more.

A hostile page (or submitter) would love to make a honeyclient probe the network it runs in:
the analyst's LAN, the cloud metadata service, the worker's own Redis. So private, loopback,
link-local, multicast and reserved addresses (IPv4 and IPv6, IPv4-mapped forms included) are
refused, for the first URL and for every later fetch. The check is made on the address each
socket actually connects to, so a name that resolves to a public address for the check and to
a private one for the fetch (DNS rebinding) gains nothing. A worker started with
`--allow-private-targets` allows them all, or only the networks it lists.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Union
from urllib.parse import urlsplit

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

ALLOW_VARIABLE = "THUGRQ_ALLOW_PRIVATE_TARGETS"
ALLOW_ALL = "all"


class TargetRefused(ConnectionRefusedError):
    """A connection to an address this worker does not analyse."""


@dataclass(frozen=True)
class Policy:
    """Non-public addresses allowed: none (the default), all, or those in `networks`."""

    allow_all: bool = False
    networks: tuple[Network, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, value: str | None) -> Policy:
        """From `--allow-private-targets` / THUGRQ_ALLOW_PRIVATE_TARGETS: empty or unset for
        none; `1`, `all`, `true` for all; else comma-separated networks (127.0.0.2/32,fd00::/8)."""
        text = (value or "").strip().lower()
        if text in ("", "0", "no", "false"):
            return cls()
        if text in ("1", "yes", "true", ALLOW_ALL):
            return cls(allow_all=True)
        try:
            networks = tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(","))
        except ValueError as error:
            raise ValueError(
                f"invalid private-target allowance {value!r}: give `all` or networks such as "
                f"127.0.0.2/32,fd00::/8 ({error})"
            ) from error
        return cls(networks=networks)

    @classmethod
    def from_environment(cls) -> Policy:
        return cls.parse(os.environ.get(ALLOW_VARIABLE))

    def describe(self) -> str:
        if self.allow_all:
            return "all private targets allowed"
        if self.networks:
            return "private targets allowed in " + ", ".join(map(str, self.networks))
        return "private targets refused"

    def refusal(self, address: str) -> str | None:
        """Why connecting to `address` is refused ("127.0.0.1 is a loopback address"), or None
        when it is allowed."""
        try:
            ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"{address} is not an IP address"
        kind = non_public_kind(ip)
        if kind is None or self.allow_all:
            return None
        effective = _embedded_ipv4(ip) or ip
        if any(effective in network or ip in network for network in self.networks):
            return None
        return f"{address} is a {kind} address"


def non_public_kind(ip: Address) -> str | None:
    """What kind of non-public address `ip` is (loopback, private...), or None if public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return non_public_kind(embedded)
    for kind in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:
        return "non-global"
    return None


def _embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, Teredo or NAT64 IPv6 address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


REFUSAL_HINT = "workers analyse public addresses only unless started with --allow-private-targets"


def url_refusal(url: str, policy: Policy) -> str | None:
    """Why the first URL is refused before any connection, or None.

    A name is resolved here and refused when every address it has is refused; the connection
    guard still checks whatever address is used later.
    """
    host = urlsplit(url).hostname or ""
    literal = True
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        literal = False
        try:
            addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
        except (socket.gaierror, UnicodeError):
            return None  # Thug will report that the name does not resolve
    refusals = [policy.refusal(address) for address in addresses]
    if not addresses or not all(refusals):
        return None
    reason = refusals[0] if literal else f"{host} resolves only to refused addresses ({refusals[0]})"
    return f"target refused: {reason}; {REFUSAL_HINT}"



class Guard:
    """`with Guard(policy, refused):` every Python socket refuses to connect where `policy`
    forbids, and each refusal is appended to `refused` (address, port, reason).

    Page code may outlive the block: JavaScript stuck past its deadline keeps running while the
    worker records the result, and Thug's async prefetch threads may still be fetching when the
    analysis returns. So the guard is never lifted while a thread the analysis started is alive;
    instead the worker's own threads are trusted (`trust()`): the one that leaves the block, and
    the deadline thread that records a stuck analysis. Every other thread stays guarded.
    """

    def __init__(self, policy: Policy, refused: list[dict[str, Any]]) -> None:
        self.policy, self.refused = policy, refused
        self._originals = (socket.socket.connect, socket.socket.connect_ex)
        self._trusted: set[int] = set()
        self._threads_before: set[threading.Thread] = set()

    def _check(self, sock: socket.socket, address: Any) -> None:
        if threading.get_ident() in self._trusted:
            return
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            reason = self.policy.refusal(str(address[0]))
            if reason:
                self.refused.append({"address": str(address[0]), "port": address[1], "reason": reason})
                raise TargetRefused(f"connection refused by thugrq: {reason}")

    def __enter__(self) -> Guard:
        connect, connect_ex = self._originals
        check = self._check
        self._threads_before = set(threading.enumerate())

        def guarded_connect(sock: socket.socket, address: Any) -> None:
            check(sock, address)
            return connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
            check(sock, address)
            return connect_ex(sock, address)

        socket.socket.connect, socket.socket.connect_ex = guarded_connect, guarded_connect_ex
        return self

    def trust(self) -> None:
        """Let the calling thread (the worker's, never the page's) connect anywhere."""
        self._trusted.add(threading.get_ident())

    def __exit__(self, *exc: object) -> None:
        self.trust()
        started = set(threading.enumerate()) - self._threads_before
        if not any(thread.ident not in self._trusted for thread in started):
            socket.socket.connect, socket.socket.connect_ex = self._originals
