"""Where this host stands on the Internet: its public address, then country and ASN, by DNS.

1. The public address, from what-is-my-IP DNS services in turn (OpenDNS, Google, Cloudflare),
   IPv4 first, then IPv6.
2. Country, ASN, prefix and registry from Team Cymru's IP-to-ASN TXT records; when several
   origins answer, the most specific prefix wins. Then the AS name.

Every query has a timeout. `THUGRQ_DNS=host:port` sends every query to that one server (how
the tests point this module at a loopback stand-in).

Given a proxy (thugrq.proxy), every question goes as DNS over TCP through a tunnel of its own, so
that what is found is the proxy's exit, not this host: Cymru's questions then go to a public
resolver (the system's may be a stub on this host, which the exit cannot reach). A failed tunnel
ends the lookup at once ("proxy unreachable"): every other question would take the same way out.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from thugrq.countries import country_code
from thugrq.exceptions import GeoError
from thugrq.proxy import Proxy, ProxyError

DNS_VARIABLE = "THUGRQ_DNS"
DNS_TIMEOUT_VARIABLE = "THUGRQ_DNS_TIMEOUT"
DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Provider:
    """A DNS service that tells the asker its own public address."""

    name: str
    qname: str
    rdtype: str
    rdclass: str
    servers: tuple[str, ...]


PROVIDERS = (
    Provider("OpenDNS", "myip.opendns.com", "A", "IN", ("208.67.222.222", "208.67.220.220")),
    Provider("Google", "o-o.myaddr.l.google.com", "TXT", "IN", ("216.239.32.10",)),
    Provider("Cloudflare", "whoami.cloudflare", "TXT", "CH", ("1.1.1.1", "1.0.0.1")),
    Provider("OpenDNS", "myip.opendns.com", "AAAA", "IN", ("2620:119:35::35", "2620:119:53::53")),
    Provider("Google", "o-o.myaddr.l.google.com", "TXT", "IN", ("2001:4860:4802:32::a",)),
    Provider("Cloudflare", "whoami.cloudflare", "TXT", "CH", ("2606:4700:4700::1111",)),
)
#: Where Cymru's questions go through a proxy: OpenDNS's resolvers answer any name, not only
#: the what-is-my-IP one.
PUBLIC_RESOLVERS = PROVIDERS[0].servers


@dataclass(frozen=True)
class Location:
    """This host's public address and where Team Cymru places it."""

    address: str
    country: str
    asn: int
    prefix: str
    registry: str
    as_name: str | None

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def dns_override() -> tuple[str, int] | None:
    """(host, port) from THUGRQ_DNS (`127.0.0.1:5353`, `[::1]:5353`), or None."""
    value = os.environ.get(DNS_VARIABLE, "").strip()
    if not value:
        return None
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return host, int(port)
    except ValueError as error:
        raise GeoError("settings", f"{DNS_VARIABLE}={value!r} is not address:port") from error


def timeout() -> float:
    try:
        return float(os.environ.get(DNS_TIMEOUT_VARIABLE, DEFAULT_TIMEOUT))
    except ValueError as error:
        raise GeoError("settings", f"{DNS_TIMEOUT_VARIABLE} must be a number of seconds") from error


def _resolver(servers: tuple[str, ...] | None) -> dns.resolver.Resolver:
    """A resolver for `servers` (None: the system's), unless THUGRQ_DNS overrides them all."""
    override = dns_override()
    if override:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [override[0]]
        resolver.port = override[1]
    elif servers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(servers)
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = resolver.timeout = timeout()
    return resolver


def _query(
    qname: str, rdtype: str, rdclass: str = "IN", servers: tuple[str, ...] | None = None,
    proxy: Proxy | None = None,
) -> list[str]:
    """The answer records as text (TXT strings joined, unquoted); DNSException on failure,
    ProxyError when the proxy fails."""
    if proxy:
        rrset = _ask_through(proxy, qname, rdtype, rdclass, servers or PUBLIC_RESOLVERS)
    else:
        rrset = _resolver(servers).resolve(
            qname, dns.rdatatype.from_text(rdtype), dns.rdataclass.from_text(rdclass),
            raise_on_no_answer=True,
        ).rrset
    if rdtype == "TXT":
        return [b"".join(record.strings).decode("utf-8", "replace") for record in rrset]
    return [record.to_text() for record in rrset]


def _ask_through(
    proxy: Proxy, qname: str, rdtype: str, rdclass: str, servers: tuple[str, ...]
) -> dns.rrset.RRset:
    """The answer to one question, asked over TCP through `proxy` of each server in turn (of
    THUGRQ_DNS alone when set) until one answers."""
    override = dns_override()
    addresses = [override] if override else [(server, 53) for server in servers]
    question = dns.message.make_query(
        qname, dns.rdatatype.from_text(rdtype), dns.rdataclass.from_text(rdclass)
    )
    seconds = timeout()
    error: dns.exception.DNSException = dns.exception.Timeout()
    for host, port in addresses:
        with proxy.connect(host, port, seconds) as tunnel:
            tunnel.setblocking(False)  # dnspython waits on it with its own deadline
            try:
                response = dns.query.tcp(question, host, seconds, port, sock=tunnel)
            except dns.exception.DNSException as failure:
                error = failure
                continue
            except (EOFError, OSError) as failure:  # the exit's connection to the server broke
                error = dns.exception.DNSException(f"connection to {host} lost ({failure})")
                continue
        return _answer(response, question)
    raise error


def _answer(response: dns.message.Message, question: dns.message.Message) -> dns.rrset.RRset:
    """The records answering `question`, or the DNSException the resolver would raise."""
    asked = question.question[0]
    if response.rcode() == dns.rcode.NXDOMAIN:
        raise dns.resolver.NXDOMAIN(qnames=[asked.name], responses={asked.name: response})
    if response.rcode() != dns.rcode.NOERROR:
        raise dns.exception.DNSException(f"server answered {dns.rcode.to_text(response.rcode())}")
    try:
        return response.find_rrset(response.answer, asked.name, asked.rdclass, asked.rdtype)
    except KeyError:
        raise dns.resolver.NoAnswer(response=response) from None


def _describe(error: dns.exception.DNSException) -> str:
    if isinstance(error, dns.resolver.NXDOMAIN):
        return "no such name (NXDOMAIN)"
    if isinstance(error, dns.exception.Timeout):
        return "no answer in time"
    if isinstance(error, dns.resolver.NoAnswer):
        return "empty answer"
    return str(error) or type(error).__name__


def public_address(proxy: Proxy | None = None) -> str:
    """This host's public address (the proxy exit's, given one), from the first provider that
    gives a valid one."""
    failures = []
    asked = set()
    for provider in PROVIDERS:
        key = (provider.qname, provider.rdtype, provider.rdclass)
        if dns_override() and key in asked:
            continue  # one server for all: the IPv6 variant is the same question
        asked.add(key)
        try:
            records = _query(
                provider.qname, provider.rdtype, provider.rdclass, provider.servers, proxy
            )
        except ProxyError as error:
            raise GeoError("public address", str(error)) from error
        except dns.exception.DNSException as error:
            failures.append(f"{provider.name} {provider.rdtype}: {_describe(error)}")
            continue
        for record in records:
            try:
                return str(ipaddress.ip_address(record.strip().strip('"')))
            except ValueError:
                continue
        failures.append(f"{provider.name} {provider.rdtype}: no address in {records!r:.100}")
    raise GeoError("public address", "no provider answered (" + "; ".join(failures) + ")")


def origin_name(address: str) -> str:
    """The Cymru origin name: reversed octets, or for IPv6 every reversed nibble."""
    ip = ipaddress.ip_address(address)
    reverse = ip.reverse_pointer.rsplit(".", 2)[0]  # drop in-addr.arpa / ip6.arpa
    zone = "origin.asn.cymru.com" if ip.version == 4 else "origin6.asn.cymru.com"
    return f"{reverse}.{zone}"


def _fields(record: str, count: int) -> list[str]:
    fields = [field.strip() for field in record.split("|")]
    if len(fields) < count:
        raise ValueError(record)
    return fields


def origin(address: str, proxy: Proxy | None = None) -> tuple[int, str, str, str]:
    """(ASN, prefix, country, registry) of the most specific origin Cymru gives for address
    (asked through `proxy`, when given: this host may not reach DNS otherwise)."""
    name = origin_name(address)
    try:
        records = _query(name, "TXT", proxy=proxy)
    except ProxyError as error:
        raise GeoError("country", str(error)) from error
    except dns.exception.DNSException as error:
        raise GeoError("country", f"{name}: {_describe(error)}") from error
    origins = []
    for record in records:
        try:
            asn, prefix, country, registry = _fields(record, 4)[:4]
            network = ipaddress.ip_network(prefix, strict=False)
            origins.append(
                (network.prefixlen, int(asn.split()[0]), prefix, country_code(country), registry)
            )
        except (ValueError, IndexError):  # InvalidInput is a ValueError: not an ISO country
            continue
    if not origins:
        raise GeoError("country", f"{name}: no usable answer in {records!r:.200}")
    _, asn, prefix, country, registry = max(origins, key=lambda entry: entry[0])
    return asn, prefix, country, registry


def as_name(asn: int, proxy: Proxy | None = None) -> str | None:
    """The AS name Cymru gives for an ASN, or None: it is a nicety, never a failure."""
    try:
        records = _query(f"AS{asn}.asn.cymru.com", "TXT", proxy=proxy)
        return _fields(records[0], 5)[4] or None
    except (dns.exception.DNSException, ProxyError, ValueError, IndexError):
        return None


def locate(address: str | None = None, proxy: Proxy | None = None) -> Location:
    """Where this host (or `address`, when given; or the exit of `proxy`, when given) stands:
    GeoError names the failing step."""
    if address:
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError as error:
            raise GeoError("public address", f"{address!r} is not an IP address") from error
    else:
        address = public_address(proxy)
    asn, prefix, country, registry = origin(address, proxy)
    return Location(address, country, asn, prefix, registry, as_name(asn, proxy))

