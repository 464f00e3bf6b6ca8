"""Which addresses an analysis may reach: public ones only, unless the worker allows more.

A hostile page (or submitter) would love to make a honeyclient probe the network it runs in:
the analyst's LAN, the cloud metadata service, the worker's own Redis. So private, loopback,
link-local, multicast, reserved and every other special-purpose address (IANA's registries,
IPv4 and IPv6, IPv4-mapped forms included) are refused, for the first URL and for every later
fetch. The check is made on the address each socket actually connects to, so a name that
resolves to a public address for the check and to a private one for the fetch (DNS rebinding)
gains nothing. A worker started with `--allow-private-targets` allows them all, or only the
networks it lists.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from thugrq.proxy import Proxy

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


#: The IANA special-purpose address registries (IPv4 and IPv6) and the deprecated IPv6
#: site-local range, each with the kind a refusal names ("fec0::1 is a site-local address").
#: The most specific range wins. Multicast and the unallocated space are left to `ipaddress`.
#: The IPv4-mapped (::ffff:0:0/96) and NAT64 (64:ff9b::/96) ranges are absent on purpose: such
#: an address reaches the IPv4 address it carries, and is judged as that address.
SPECIAL_PURPOSE: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("0.0.0.0/8", "this-network"),
        ("0.0.0.0/32", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "protocol-assignment"),
        ("192.0.0.0/29", "DS-Lite"),
        ("192.0.0.8/32", "dummy"),
        ("192.0.0.9/32", "PCP-anycast"),
        ("192.0.0.10/32", "TURN-anycast"),
        ("192.0.0.170/31", "NAT64-discovery"),
        ("192.0.2.0/24", "documentation"),
        ("192.31.196.0/24", "DNS-sink (AS112)"),
        ("192.52.193.0/24", "multicast-tunnel (AMT)"),
        ("192.88.99.0/24", "6to4-relay"),
        ("192.88.99.2/32", "6a44-relay"),
        ("192.168.0.0/16", "private"),
        ("192.175.48.0/24", "DNS-sink (AS112)"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("240.0.0.0/4", "reserved"),
        ("255.255.255.255/32", "broadcast"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-NAT64"),
        ("100::/64", "discard-only"),
        ("100:0:0:1::/64", "dummy"),
        ("2001::/23", "protocol-assignment"),
        ("2001::/32", "Teredo"),
        ("2001:1::1/128", "PCP-anycast"),
        ("2001:1::2/128", "TURN-anycast"),
        ("2001:1::3/128", "DNS-SD-anycast"),
        ("2001:2::/48", "benchmarking"),
        ("2001:3::/32", "multicast-tunnel (AMT)"),
        ("2001:4:112::/48", "DNS-sink (AS112)"),
        ("2001:10::/28", "hash-identifier (ORCHID)"),
        ("2001:20::/28", "hash-identifier (ORCHIDv2)"),
        ("2001:30::/28", "drone-identifier (DET)"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("2620:4f:8000::/48", "DNS-sink (AS112)"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment-routing (SRv6)"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
    )
)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def non_public_kind(ip: Address) -> str | None:
    """What kind of non-public address `ip` is (loopback, documentation...), or None if public.

    An IPv6 address carrying an IPv4 one is refused as what that one is; 6to4 and Teredo
    addresses are refused in any case (tunnels through relays, never a page's own server).
    """
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return non_public_kind(embedded) or _special_purpose_kind(ip)
    return _special_purpose_kind(ip) or _property_kind(ip)


def _special_purpose_kind(ip: Address) -> str | None:
    """The kind of the most specific SPECIAL_PURPOSE range holding `ip`, if any."""
    matches = [(network.prefixlen, kind) for network, kind in SPECIAL_PURPOSE if ip in network]
    return max(matches)[1] if matches else None


def _property_kind(ip: Address) -> str | None:
    """What `ipaddress` knows beyond the table: multicast, reserved space, and whatever a newer
    Python marks as not global."""
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
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


REFUSAL_HINT = "workers analyse public addresses only unless started with --allow-private-targets"


def url_refusal(url: str, policy: Policy, resolve: bool = True) -> str | None:
    """Why the first URL is refused before any connection, or None.

    A name is resolved here (unless `resolve` is false: a proxy resolves it, and a lookup here
    would only leak it) and refused when every address it has is refused; the connection guard
    still checks whatever address is used later.
    """
    reason = _host_refusal(urlsplit(url).hostname or "", policy, resolve)
    return f"target refused: {reason}; {REFUSAL_HINT}" if reason else None


def _host_refusal(host: str, policy: Policy, resolve: bool) -> str | None:
    literal = True
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        literal = False
        try:
            addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, None)}) if resolve else []
        except (socket.gaierror, UnicodeError):
            return None  # Thug will report that the name does not resolve
    refusals = [policy.refusal(address) for address in addresses]
    if not addresses or not all(refusals):
        return None
    return refusals[0] if literal else f"{host} resolves only to refused addresses ({refusals[0]})"



class Guard:
    """`with Guard(policy, refused):` every Python socket refuses to connect where `policy`
    forbids, and each refusal is appended to `refused` (address, port, reason).

    Page code may outlive the block: JavaScript stuck past its deadline keeps running while the
    worker records the result, and Thug's async prefetch threads may still be fetching when the
    analysis returns. So the guard is never lifted while a thread the analysis started is alive;
    instead the worker's own threads are trusted (`trust()`): the one that leaves the block, and
    the deadline thread that records a stuck analysis. Every other thread stays guarded.
    """

    def __init__(
        self, policy: Policy, refused: list[dict[str, Any]], proxy: Proxy | None = None
    ) -> None:
        self.policy, self.refused, self.proxy = policy, refused, proxy
        import requests  # Thug's: a worker's, not a submitter's, dependency

        self._originals = (socket.socket.connect, socket.socket.connect_ex)
        self._session, self._send = requests.Session, requests.Session.send
        self._trusted: set[int] = set()
        self._threads_before: set[threading.Thread] = set()
        #: Behind a proxy, the only addresses the page's fetches may connect to.
        self._exits = _addresses(proxy.host, proxy.port) if proxy else None

    def _check(self, sock: socket.socket, address: Any) -> None:
        if threading.get_ident() in self._trusted:
            return
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if self._exits is None:
                self._refuse(str(address[0]), address[1], self.policy.refusal(str(address[0])))
            elif _normal(str(address[0])) not in self._exits:  # the proxy: whatever its address
                self._refuse(str(address[0]), address[1], f"not through the proxy {self.proxy}")

    def _check_target(self, url: str) -> None:
        """Behind a proxy the sockets reach only the proxy: the page's target is judged by its
        URL, its name resolved here only when the proxy would not resolve it."""
        if threading.get_ident() in self._trusted or self.proxy is None:
            return
        parts = urlsplit(url)
        self._refuse(
            parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80),
            _host_refusal(parts.hostname or "", self.policy, not self.proxy.remote_dns),
        )

    def _refuse(self, address: str, port: int, reason: str | None) -> None:
        if reason:
            self.refused.append({"address": address, "port": port, "reason": reason})
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

        def guarded_send(session: Any, request: Any, **kwargs: Any) -> Any:
            self._check_target(request.url)
            return send(session, request, **kwargs)

        send = self._send
        socket.socket.connect, socket.socket.connect_ex = guarded_connect, guarded_connect_ex
        self._session.send = guarded_send
        return self

    def trust(self) -> None:
        """Let the calling thread (the worker's, never the page's) connect anywhere."""
        self._trusted.add(threading.get_ident())

    def __exit__(self, *exc: object) -> None:
        self.trust()
        started = set(threading.enumerate()) - self._threads_before
        if not any(thread.ident not in self._trusted for thread in started):
            socket.socket.connect, socket.socket.connect_ex = self._originals
            self._session.send = self._send


def _normal(address: str) -> Address:
    return ipaddress.ip_address(address.split("%", 1)[0])


def _addresses(host: str, port: int) -> set[Address]:
    """Every address `host` has (the worker's own lookup: trusted, made before any page runs)."""
    try:
        return {_normal(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        return set()  # an unknown proxy: nothing is reachable, Thug reports the proxy down
