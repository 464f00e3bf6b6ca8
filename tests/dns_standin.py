"""A DNS server on loopback that answers like Team Cymru and the what-is-my-IP services.

The real services are unreachable from tests (and must never be asked), so this stand-in
answers from a table the test sets, and can stay silent or answer garbage on demand. For hosts
in network namespaces (tests/netns.py) it listens on the lab bridge and answers as the real
services do: what-is-my-IP with the address the query came from, Cymru from a prefix table, so
that nobody tells a worker where it is.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


#: The what-is-my-IP questions geo.PROVIDERS asks over IPv4, with how the answer is written.
WHOAMI = {
    ("myip.opendns.com", "A"): "{}",
    ("o-o.myaddr.l.google.com", "TXT"): '"{}"',
    ("whoami.cloudflare", "TXT"): '"{}"',
}
ORIGIN_ZONE = ".origin.asn.cymru.com"


class DnsStandIn:
    """UDP DNS on `host` (127.0.0.1); `records[(name, type)] = [rdata text]`, `mode` in
    answer/silent/garbage; with `reflect`, what-is-my-IP answers the query's source address."""

    def __init__(self, host: str = "127.0.0.1", reflect: bool = False) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.prefixes: dict[ipaddress.IPv4Network, tuple[str, int]] = {}
        self.reflect = reflect
        self.mode = "answer"
        self.queries: list[tuple[str, str]] = []
        self.sources: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rdtype), []).extend(values)

    def add_txt(self, name: str, *texts: str) -> None:
        self.add(name, "TXT", *(f'"{text}"' for text in texts))

    def place(
        self, address: str, country: str, asn: int = 64500, prefix: str | None = None,
        as_name: str = "EXAMPLE-AS Example Networks",
    ) -> None:
        """Answer as the services would for a host at `address` in `country`."""
        import ipaddress

        from thugrq.geo import origin_name

        ip = ipaddress.ip_address(address)
        self.add("myip.opendns.com", "A" if ip.version == 4 else "AAAA", address)
        prefix = prefix or str(ipaddress.ip_network(f"{address}/{24 if ip.version == 4 else 48}", strict=False))
        self.add_txt(origin_name(address), f"{asn} | {prefix} | {country} | ripencc | 2001-01-01")
        self.add_txt(f"AS{asn}.asn.cymru.com", f"{asn} | {country} | ripencc | 2001-01-01 | {as_name}")

    def add_prefix(self, network: str, country: str, asn: int) -> None:
        """Place every address of `network` in `country` and AS `asn`, as Cymru would."""
        self.prefixes[ipaddress.IPv4Network(network)] = (country, asn)
        name = f"AS{asn}.asn.cymru.com"
        self.records[(name.lower(), "TXT")] = [f'"{asn} | {country} | ripencc | 2001-01-01 | LAB"']

    def _computed(self, name: str, rdtype: str, source: str) -> list[str]:
        """The answers that depend on who asks: what-is-my-IP (with `reflect`) and Cymru's
        origin question from the prefix table (every matching prefix: geo takes the longest)."""
        if self.reflect and (name, rdtype) in WHOAMI:
            return [WHOAMI[(name, rdtype)].format(source)]
        if rdtype != "TXT" or not name.endswith(ORIGIN_ZONE):
            return []
        try:
            octets = name[: -len(ORIGIN_ZONE)].split(".")
            address = ipaddress.IPv4Address(".".join(reversed(octets)))
        except ValueError:
            return []
        return [
            f'"{asn} | {network} | {country} | ripencc | 2001-01-01"'
            for network, (country, asn) in self.prefixes.items() if address in network
        ]

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            reply = self._reply(data, peer[0])
            if reply is not None:
                self.sock.sendto(reply, peer)

    def _reply(self, data: bytes, source: str) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - not DNS: ignore it
            return None
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        self.sources.append(source)
        if self.mode == "silent":
            return None
        if self.mode == "garbage":
            return data[:2] + b"\x81\x80\xff\xff garbage"
        response = dns.message.make_response(query)
        values = self._computed(name, rdtype, source) or self.records.get((name, rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, question.rdclass, question.rdtype, values)
            )
        elif not any(key[0] == name for key in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def __enter__(self) -> DnsStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
