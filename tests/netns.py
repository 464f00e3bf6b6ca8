"""A lab of separate hosts on this machine: Linux network namespaces on a bridge.

Workers on 127.0.0.1 all share one address, so nothing they do can show that a job ran from
the right place. Here each host is a network namespace with its own address, joined by a veth
link to a bridge in the root namespace, where the services the hosts talk to listen.

Only the RFC 2544 lab range 198.18.0.0/15 is used, and only after `ip route` shows that nothing
on this machine routes any of it: another range (a documentation one, say) may be this
machine's uplink, and shadowing it cuts the machine off. The hosts get no default route and the
root namespace gets no new route out of the lab, so nothing leaves the machine.

Everything a lab creates (namespaces, links, /etc/netns files) is named `PREFIX-...` and
removed when it closes, when the process exits (atexit, SIGTERM) and, for what a killed run
left behind, when the next lab of the same prefix opens. Needs root and iproute2 (`ip netns`); `unavailable()` says why a lab cannot run.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

LAB = ipaddress.IPv4Network("198.18.0.0/15")
#: Where `ip netns exec` finds a namespace's own /etc files.
NETNS_ETC = Path("/etc/netns")
#: The bridge's own address: where Redis, the site and the DNS stand-in listen.
BRIDGE = ipaddress.IPv4Interface("198.18.0.1/24")
#: The host's end of its veth link, inside its namespace.
HOST_LINK = "lab0"
#: Linux interface names are at most 15 characters: PREFIX-HOST must fit.
IFNAMSIZ = 15
CLEANUP_TIMEOUT = 10.0


class LabError(Exception):
    """The lab cannot be built here, or could not be removed."""


@dataclass(frozen=True)
class Host:
    """One host: a namespace, and the root-side end of its veth link, both named `link`."""

    link: str
    interface: ipaddress.IPv4Interface

    @property
    def address(self) -> str:
        return str(self.interface.ip)

    @property
    def gateway(self) -> ipaddress.IPv4Interface:
        """The bridge's address on this host's subnet: the host's route to the lab goes there."""
        network = self.interface.network
        return ipaddress.IPv4Interface(f"{network.network_address + 1}/{network.prefixlen}")


def ip(*arguments: str, check: bool = True) -> str:
    """Run `ip ARGUMENTS`; LabError with ip's own words when it fails and `check` is set."""
    ran = subprocess.run(["ip", *arguments], capture_output=True, text=True, timeout=30)
    if check and ran.returncode != 0:
        raise LabError(f"ip {' '.join(arguments)}: {ran.stderr.strip()}")
    return ran.stdout


def unavailable() -> str | None:
    """Why a lab cannot run on this machine (not root, no iproute2, no netns), or None."""
    if os.geteuid() != 0:
        return "network-namespace tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    if not shutil.which("ip"):
        return "network-namespace tests need iproute2's `ip` (apt-get install iproute2)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def namespaces(prefix: str) -> list[str]:
    """The namespaces named PREFIX-..."""
    names = (line.split()[0] for line in ip("netns", "list").splitlines() if line.strip())
    return [name for name in names if name.startswith(f"{prefix}-")]


def links(prefix: str) -> list[str]:
    """The root namespace's interfaces named PREFIX-... (veth ends, the bridge)."""
    return [
        link["ifname"] for link in json.loads(ip("-j", "link", "show") or "[]")
        if link["ifname"].startswith(f"{prefix}-")
    ]


def resolver_files(prefix: str) -> list[Path]:
    """The /etc/netns directories of namespaces named PREFIX-... (their own resolv.conf)."""
    return sorted(NETNS_ETC.glob(f"{prefix}-*"))


def leftovers(prefix: str) -> list[str]:
    """What of a lab of `prefix` exists now: namespaces, root-side interfaces, resolver files."""
    return (
        [f"namespace {name}" for name in namespaces(prefix)]
        + [f"interface {name}" for name in links(prefix)]
        + [f"directory {path}" for path in resolver_files(prefix)]
    )


def lab_routes() -> list[str]:
    """Routes of any table that reach into 198.18.0.0/15: a lab must not shadow them."""
    routes = json.loads(ip("-4", "-j", "route", "show", "table", "all") or "[]")
    return [
        f"{route['dst']} dev {route.get('dev', '?')}" for route in routes
        if route["dst"] != "default"
        and ipaddress.ip_network(route["dst"], strict=False).overlaps(LAB)
    ]


def cleanup(prefix: str) -> None:
    """Remove every namespace and interface named PREFIX-..., killing what runs inside first.

    A namespace lives on while a process is in it, and its veth end with it, so processes die
    first; the root-side veth ends are deleted explicitly all the same, then the bridge.
    LabError if something is still there after CLEANUP_TIMEOUT seconds.
    """
    deadline = time.monotonic() + CLEANUP_TIMEOUT
    while True:
        for name in namespaces(prefix):
            for pid in ip("netns", "pids", name, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            ip("netns", "delete", name, check=False)
        for link in sorted(links(prefix), key=lambda name: name.endswith("-br")):
            ip("link", "delete", link, check=False)
        for path in resolver_files(prefix):
            shutil.rmtree(path, ignore_errors=True)
        left = leftovers(prefix)
        if not left:
            return
        if time.monotonic() > deadline:
            raise LabError(f"could not remove {', '.join(left)}")
        time.sleep(0.2)


class Lab:
    """Hosts in namespaces on a bridge at BRIDGE; a context manager that always removes them.

    `hosts` maps a short name (the namespace is PREFIX-NAME) to an address with its subnet in
    198.18.0.0/15, e.g. {"it1": "198.18.1.2/24"}. Opening fails with LabError when another lab
    of the same prefix is open, or when this machine already routes part of the lab range.
    """

    def __init__(self, prefix: str, hosts: dict[str, str]) -> None:
        self.prefix = prefix
        self.bridge = f"{prefix}-br"
        self.hosts = {
            name: Host(f"{prefix}-{name}", ipaddress.IPv4Interface(cidr))
            for name, cidr in hosts.items()
        }
        self.lock: socket.socket | None = None
        self.saved_sigterm: signal.Handlers | None = None
        for host in self.hosts.values():
            if len(host.link) > IFNAMSIZ:
                raise LabError(f"{host.link}: longer than {IFNAMSIZ} characters")
            network = host.interface.network
            if network.overlaps(BRIDGE.network) or not network.subnet_of(LAB):
                raise LabError(f"{host.interface}: not a host subnet of {LAB}")

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the namespace of `host`."""
        return ["ip", "netns", "exec", self.hosts[host].link, *argv]

    def pids(self, host: str) -> list[int]:
        """Every process running inside the namespace of `host`."""
        return [int(pid) for pid in ip("netns", "pids", self.hosts[host].link).split()]

    def readdress(self, host: str, cidr: str) -> None:
        """Give `host` another address, as a VPN reconnecting or a moved laptop does: the new
        subnet's gateway joins the bridge, the host's route to the lab goes through it, and the
        old address goes (the sockets bound to it are left to find out)."""
        old = self.hosts[host]
        new = Host(old.link, ipaddress.IPv4Interface(cidr))
        if not new.interface.network.subnet_of(LAB) or new.interface.network.overlaps(BRIDGE.network):
            raise LabError(f"{new.interface}: not a host subnet of {LAB}")
        inside = ("-n", old.link)
        ip("address", "replace", str(new.gateway), "dev", self.bridge)
        ip(*inside, "address", "add", str(new.interface), "dev", HOST_LINK)
        ip(*inside, "route", "replace", str(LAB), "via", str(new.gateway.ip))
        ip(*inside, "address", "delete", str(old.interface), "dev", HOST_LINK)
        self.hosts[host] = new

    def resolve_with(self, host: str, nameserver: str) -> None:
        """Give `host` its own resolver: `ip netns exec` mounts /etc/netns/NAMESPACE/resolv.conf
        over /etc/resolv.conf for what it runs there (port 53: resolv.conf has no other)."""
        directory = NETNS_ETC / self.hosts[host].link
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "resolv.conf").write_text(f"nameserver {nameserver}\noptions timeout:2 attempts:1\n")

    def add_service_address(self, interface: str) -> None:
        """Another address of the root namespace on the bridge, inside BRIDGE's subnet: a second
        service the hosts reach, e.g. the other answer of a name resolved per country."""
        if ipaddress.IPv4Interface(interface).network != BRIDGE.network:
            raise LabError(f"{interface}: not in {BRIDGE.network}")
        ip("address", "add", interface, "dev", self.bridge)

    def set_link(self, host: str, up: bool) -> None:
        """Take the root-side end of `host`'s veth link down (a partition: the host reaches
        nothing in the lab, and nothing reaches it) or bring it back up."""
        ip("link", "set", self.hosts[host].link, "up" if up else "down")

    def __enter__(self) -> Lab:
        self._lock()
        try:
            cleanup(self.prefix)  # what a killed run of this prefix left behind
            routed = lab_routes()
            if routed:
                raise LabError(f"{LAB} is already routed here: {'; '.join(routed)}")
            self._remove_on_exit()
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the lab, then stop guarding the exit; LabError if anything outlived it."""
        try:
            cleanup(self.prefix)
        finally:
            atexit.unregister(self._cleanup_at_exit)
            if self.saved_sigterm is not None:
                signal.signal(signal.SIGTERM, self.saved_sigterm)
                self.saved_sigterm = None
            if self.lock:
                self.lock.close()
                self.lock = None

    def _lock(self) -> None:
        """One lab per prefix at a time: a second one would wipe the first's hosts on opening.
        The lock is an abstract Unix socket: the kernel frees it when its process dies, and it
        leaves no file behind."""
        self.lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.lock.bind(f"\0thugrq-netns-lab-{self.prefix}")
        except OSError as error:
            self.lock.close()
            self.lock = None
            raise LabError(f"another run uses the {self.prefix} network namespaces") from error

    def _remove_on_exit(self) -> None:
        """Remove the lab even when the process ends without unwinding: atexit, and SIGTERM
        turned into SystemExit (which unwinds through `finally` and runs atexit)."""
        atexit.register(self._cleanup_at_exit)
        if threading.current_thread() is threading.main_thread():
            self.saved_sigterm = signal.signal(signal.SIGTERM, self._exit_on_sigterm)

    def _cleanup_at_exit(self) -> None:
        cleanup(self.prefix)

    @staticmethod
    def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    def _build(self) -> None:
        """The bridge (BRIDGE, and each host subnet's gateway), then each host on its link."""
        ip("link", "add", self.bridge, "type", "bridge")
        for gateway in sorted({str(BRIDGE), *(str(host.gateway) for host in self.hosts.values())}):
            ip("address", "add", gateway, "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host in self.hosts.values():
            self._add_host(host)

    def _add_host(self, host: Host) -> None:
        """A namespace whose only route beyond its subnet is the lab range, via the bridge."""
        ip("netns", "add", host.link)
        ip("link", "add", host.link, "type", "veth", "peer", "name", HOST_LINK, "netns", host.link)
        ip("link", "set", host.link, "master", self.bridge, "up")
        inside = ("-n", host.link)
        ip(*inside, "link", "set", "lo", "up")
        ip(*inside, "address", "add", str(host.interface), "dev", HOST_LINK)
        ip(*inside, "link", "set", HOST_LINK, "up")
        ip(*inside, "route", "add", str(LAB), "via", str(host.gateway.ip))
