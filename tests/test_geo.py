"""geo.py against the loopback DNS stand-in: address, country, ASN, and each way it can fail."""

from __future__ import annotations

import pytest

from thugrq import geo
from thugrq.exceptions import GeoError


def test_ipv4_host_is_located(cymru):
    cymru.place("192.0.2.10", "IT", asn=64500, as_name="EXAMPLE-IT Example Italia")
    location = geo.locate()
    assert location == geo.Location(
        "192.0.2.10", "IT", 64500, "192.0.2.0/24", "ripencc", "EXAMPLE-IT Example Italia"
    )


def test_origin_is_asked_with_the_reversed_address(cymru):
    cymru.place("192.0.2.10", "IT")
    geo.locate()
    assert ("10.2.0.192.origin.asn.cymru.com", "TXT") in cymru.queries


def test_ipv6_host_is_located_through_its_nibbles(cymru):
    cymru.place("2001:db8::1", "DE", asn=64501, prefix="2001:db8::/32")
    location = geo.locate()
    assert (location.address, location.country, location.asn) == ("2001:db8::1", "DE", 64501)
    nibbles = "1.0.0.0." + "0." * 20 + "8.b.d.0.1.0.0.2.origin6.asn.cymru.com"
    assert (nibbles, "TXT") in cymru.queries


def test_most_specific_prefix_wins_among_several_origins(cymru):
    cymru.add("myip.opendns.com", "A", "198.51.100.7")
    cymru.add_txt(
        geo.origin_name("198.51.100.7"),
        "64496 | 198.51.0.0/16 | US | arin | 1999-01-01",
        "64497 | 198.51.100.0/24 | FR | ripencc | 2005-01-01",
        "64498 | 198.0.0.0/8 | GB | ripencc | 1990-01-01",
    )
    location = geo.locate()
    assert (location.country, location.asn, location.prefix) == ("FR", 64497, "198.51.100.0/24")


def test_later_providers_are_asked_when_the_first_does_not_know(cymru):
    cymru.add_txt("o-o.myaddr.l.google.com", "edns0-client-subnet 10.0.0.0/24", "203.0.113.5")
    cymru.add_txt(geo.origin_name("203.0.113.5"), "64510 | 203.0.113.0/24 | JP | apnic | 2010-01-01")
    assert geo.locate().country == "JP"


def test_cloudflare_chaos_txt_is_understood(cymru):
    cymru.add_txt("whoami.cloudflare", "203.0.113.9")
    assert geo.public_address() == "203.0.113.9"


def test_missing_as_name_is_not_a_failure(cymru):
    cymru.add("myip.opendns.com", "A", "192.0.2.10")
    cymru.add_txt(geo.origin_name("192.0.2.10"), "64500 | 192.0.2.0/24 | IT | ripencc | 2001-01-01")
    location = geo.locate()
    assert location.country == "IT" and location.as_name is None


def test_given_public_ip_skips_the_address_step(cymru):
    cymru.place("192.0.2.10", "IT")
    assert geo.locate("192.0.2.10").country == "IT"
    assert ("myip.opendns.com", "A") not in cymru.queries


def test_silent_dns_fails_at_the_address_step(cymru):
    cymru.mode = "silent"
    with pytest.raises(GeoError) as failure:
        geo.locate()
    assert failure.value.step == "public address"
    assert "no answer in time" in str(failure.value)


def test_unknown_address_fails_at_the_country_step_with_nxdomain(cymru):
    cymru.add("myip.opendns.com", "A", "192.0.2.10")
    with pytest.raises(GeoError, match="NXDOMAIN") as failure:
        geo.locate()
    assert failure.value.step == "country"


def test_garbage_answers_are_a_failure_not_a_crash(cymru):
    cymru.mode = "garbage"
    with pytest.raises(GeoError) as failure:
        geo.locate()
    assert failure.value.step == "public address"


@pytest.mark.parametrize(
    "txt",
    ["nonsense", "64500 | not-a-prefix | IT | ripencc | 2001", "64500 | 192.0.2.0/24 | XX | r | d",
     "AS? | 192.0.2.0/24 | IT | ripencc | 2001-01-01"],
)
def test_malformed_origin_txt_fails_at_the_country_step(cymru, txt):
    cymru.add("myip.opendns.com", "A", "192.0.2.10")
    cymru.add_txt(geo.origin_name("192.0.2.10"), txt)
    with pytest.raises(GeoError) as failure:
        geo.locate()
    assert failure.value.step == "country"


def test_non_address_answer_is_skipped(cymru):
    cymru.add_txt("o-o.myaddr.l.google.com", "not an address")
    cymru.add_txt("whoami.cloudflare", "192.0.2.44")
    assert geo.public_address() == "192.0.2.44"


@pytest.mark.parametrize("value", ["nonsense", "127.0.0.1", "host:53"])
def test_bad_dns_setting_is_named(monkeypatch, value):
    monkeypatch.setenv("THUGRQ_DNS", value)
    with pytest.raises(GeoError, match="THUGRQ_DNS"):
        geo.locate()
