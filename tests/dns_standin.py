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
    """DNS on `host` (127.0.0.1), over UDP and TCP on one port; `records[(name, type)] = [rdata
    text]`, `mode` in answer/silent/garbage; with `reflect`, what-is-my-IP answers the query's
    source address. `transports` says how each query came (geo through a proxy uses TCP)."""

    def __init__(self, host: str = "127.0.0.1", reflect: bool = False, port: int = 0) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.prefixes: dict[ipaddress.IPv4Network, tuple[str, int]] = {}
        self.reflect = reflect
        self.mode = "answer"
        self.queries: list[tuple[str, str]] = []
        self.sources: list[str] = []
        self.transports: list[str] = []
        self.by_source: dict[tuple[str, str], dict[ipaddress.IPv4Network, str]] = {}
        self.sock, self.listener = _bind_pair(host, port)
        self.host, self.port = self.sock.getsockname()
        self.threads = [
            threading.Thread(target=self._serve, daemon=True),
            threading.Thread(target=self._accept, daemon=True),
        ]

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

    def add_by_source(self, name: str, rdtype: str, answers: dict[str, str]) -> None:
        """Answer `name` by who asks: `answers` maps a source network to the record given to
        askers in it (geo-DNS, as cloaking networks do per country)."""
        self.by_source[(name.lower().rstrip("."), rdtype)] = {
            ipaddress.IPv4Network(network): value for network, value in answers.items()
        }

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
        table = self.by_source.get((name, rdtype), {})
        answers = [value for network, value in table.items() if ipaddress.ip_address(source) in network]
        if answers:
            return answers[:1]
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
            reply = self._reply(data, peer[0], "udp")
            if reply is not None:
                self.sock.sendto(reply, peer)

    def _accept(self) -> None:
        while True:
            try:
                connection, peer = self.listener.accept()
            except OSError:
                return
            serve = threading.Thread(target=self._serve_tcp, args=(connection, peer[0]), daemon=True)
            serve.start()

    def _serve_tcp(self, connection: socket.socket, source: str) -> None:
        """Messages framed by a 2-byte length (RFC 1035 4.2.2) until the client closes."""
        with connection:
            while True:
                length = _read(connection, 2)
                data = _read(connection, int.from_bytes(length, "big")) if length else b""
                if not data:
                    return
                reply = self._reply(data, source, "tcp")
                if reply is not None:
                    connection.sendall(len(reply).to_bytes(2, "big") + reply)

    def _reply(self, data: bytes, source: str, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - not DNS: ignore it
            return None
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        self.sources.append(source)
        self.transports.append(transport)
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
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.listener.close()


def _bind_pair(host: str, port: int = 0) -> tuple[socket.socket, socket.socket]:
    """A UDP socket and a listening TCP socket on one port of `host`: `port`, or a free one
    (retried when the TCP side of the port the system gave the UDP socket is taken)."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((host, port))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(udp.getsockname())
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen()
        return udp, tcp
    raise OSError(f"no port free for both UDP and TCP on {host}")


def _read(connection: socket.socket, count: int) -> bytes:
    """Exactly `count` bytes, or b"" when the client closed (or broke) the connection first."""
    data = b""
    while len(data) < count:
        try:
            chunk = connection.recv(count - len(data))
        except OSError:
            return b""
        if not chunk:
            return b""
        data += chunk
    return data
