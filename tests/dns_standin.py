"""A DNS server on loopback that answers like Team Cymru and the what-is-my-IP services.

The real services are unreachable from tests (and must never be asked), so this stand-in
answers from a table the test sets, and can stay silent or answer garbage on demand.
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsStandIn:
    """UDP DNS on 127.0.0.1; `records[(name, type)] = [rdata text]`, `mode` in answer/silent/garbage."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.mode = "answer"
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

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

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            reply = self._reply(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def _reply(self, data: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - not DNS: ignore it
            return None
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if self.mode == "silent":
            return None
        if self.mode == "garbage":
            return data[:2] + b"\x81\x80\xff\xff garbage"
        response = dns.message.make_response(query)
        values = self.records.get((name, rdtype))
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
