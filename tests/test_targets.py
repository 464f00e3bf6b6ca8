"""Which addresses count as public: every IANA special-purpose range is refused, by name."""

from __future__ import annotations

import ipaddress

import pytest

from thugrq.targets import SPECIAL_PURPOSE, Policy, non_public_kind


@pytest.mark.parametrize(
    "network", [network for network, _ in SPECIAL_PURPOSE], ids=[str(n) for n, _ in SPECIAL_PURPOSE]
)
def test_first_and_last_address_of_every_special_purpose_range_are_refused(network):
    for address in (network[0], network[-1]):
        reason = Policy().refusal(str(address))
        assert reason and reason.startswith(f"{address} is a "), address


@pytest.mark.parametrize(
    "address, kind",
    [
        ("fec0::1", "site-local"), ("feff::1", "site-local"), ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("0.1.2.3", "this-network"), ("0.0.0.0", "unspecified"), ("192.0.0.1", "DS-Lite"),
        ("192.0.0.200", "protocol-assignment"), ("192.0.2.1", "documentation"),
        ("198.19.255.255", "benchmarking"), ("240.0.0.1", "reserved"), ("255.255.255.255", "broadcast"),
        ("2001:db8::1", "documentation"), ("3fff::1", "documentation"), ("5f00::1", "segment-routing (SRv6)"),
        ("64:ff9b:1::1", "local-NAT64"), ("100::1", "discard-only"), ("2001:1::4", "protocol-assignment"),
        ("2001:20::1", "hash-identifier (ORCHIDv2)"), ("fd00::1", "private"), ("ff02::1", "multicast"),
        ("224.0.0.1", "multicast"), ("::7f00:1", "reserved"),
    ],
)
def test_refusals_name_the_kind_of_range(address, kind):
    assert non_public_kind(ipaddress.ip_address(address)) == kind
    assert Policy().refusal(address) == f"{address} is a {kind} address"


@pytest.mark.parametrize(
    "address, kind",
    [
        ("::ffff:10.0.0.1", "private"), ("::ffff:8.8.8.8", None),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "link-local"), ("64:ff9b::808:808", None),  # NAT64
        ("2002:7f00:1::", "loopback"), ("2002:808:808::1", "6to4"),  # 6to4: never public
        ("2001::80ff:fffe", "loopback"), ("2001::f7f7:f7f7", "Teredo"),  # Teredo: 127.0.0.1, 8.8.8.8
    ],
)
def test_embedded_ipv4_addresses_are_judged_by_what_they_carry(address, kind):
    assert non_public_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "192.0.1.1", "100.128.0.1", "198.20.0.1", "2a00:1450:4001::1",
     "2606:4700::1111", "2001:200::1", "2620:4f:8001::1"],
)
def test_public_addresses_are_allowed(address):
    assert non_public_kind(ipaddress.ip_address(address)) is None
    assert Policy().refusal(address) is None
