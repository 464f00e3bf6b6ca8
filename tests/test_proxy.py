"""Proxy URLs: what is accepted, what is refused and why, and where credentials may show."""

from __future__ import annotations

import pytest

from thugrq.exceptions import InvalidInput
from thugrq.proxy import PASSWORD_VARIABLE, USERNAME_VARIABLE, Proxy

CREDENTIALS = {USERNAME_VARIABLE: "an@lyst", PASSWORD_VARIABLE: "s3cret:pass/word"}


@pytest.mark.parametrize(
    "url, scheme, host, port",
    [
        ("socks5://proxy.example:1080", "socks5", "proxy.example", 1080),
        ("SOCKS5H://203.0.113.7:9050", "socks5h", "203.0.113.7", 9050),
        ("http://[2001:db8::1]:3128/", "http", "2001:db8::1", 3128),
    ],
)
def test_a_proxy_url_is_parsed_into_scheme_host_and_port(url, scheme, host, port):
    proxy = Proxy.parse(url, {})
    assert (proxy.scheme, proxy.host, proxy.port) == (scheme, host, port)
    assert proxy.username is None and proxy.password is None


def test_an_ipv6_proxy_is_shown_in_brackets():
    assert str(Proxy.parse("http://[2001:db8::1]:3128", {})) == "http://[2001:db8::1]:3128"


def test_credentials_come_from_the_environment():
    proxy = Proxy.parse("socks5://proxy.example:1080", CREDENTIALS)
    assert (proxy.username, proxy.password) == ("an@lyst", "s3cret:pass/word")


def test_str_and_repr_never_show_the_credentials():
    proxy = Proxy.parse("socks5://proxy.example:1080", CREDENTIALS)
    assert str(proxy) == "socks5://proxy.example:1080"
    for shown in (str(proxy), repr(proxy)):
        assert "an@lyst" not in shown and "s3cret" not in shown


def test_url_carries_the_credentials_quoted():
    proxy = Proxy.parse("socks5://proxy.example:1080", CREDENTIALS)
    assert proxy.url == "socks5://an%40lyst:s3cret%3Apass%2Fword@proxy.example:1080"
    assert proxy.secrets == ("an@lyst", "s3cret:pass/word")


def test_url_without_credentials_is_the_proxy_as_shown():
    proxy = Proxy.parse("http://proxy.example:3128", {})
    assert proxy.url == str(proxy) and proxy.secrets == ()


def test_only_socks5h_and_http_let_the_proxy_resolve_names():
    remote = {scheme: Proxy.parse(f"{scheme}://p.example:1", {}).remote_dns
              for scheme in ("socks5", "socks5h", "http")}
    assert remote == {"socks5": False, "socks5h": True, "http": True}


@pytest.mark.parametrize(
    "url", ["bogus://x", "https://proxy.example:443", "socks4://proxy.example:1080",
            "proxy.example:1080", ""],
)
def test_a_scheme_other_than_socks5_socks5h_or_http_is_refused(url):
    with pytest.raises(InvalidInput, match="use socks5://, socks5h:// or http://"):
        Proxy.parse(url, {})


@pytest.mark.parametrize(
    "url", ["socks5://proxy.example", "socks5://:1080", "http://proxy.example:3128/path",
            "http://proxy.example:3128?x=1"],
)
def test_a_missing_port_or_host_or_anything_more_is_refused(url):
    with pytest.raises(InvalidInput, match="SCHEME://HOST:PORT and nothing more"):
        Proxy.parse(url, {})


@pytest.mark.parametrize("url", ["socks5://proxy.example:99999", "socks5://proxy.example:port"])
def test_an_invalid_port_is_refused(url):
    with pytest.raises(InvalidInput, match="invalid proxy"):
        Proxy.parse(url, {})


@pytest.mark.parametrize(
    "url", ["socks5://mallory:s3cret@proxy.example:1080", "http://mallory@proxy.example:3128"]
)
def test_credentials_in_the_url_are_refused_without_repeating_them(url):
    refusal = f"set {USERNAME_VARIABLE} and {PASSWORD_VARIABLE}"
    with pytest.raises(InvalidInput, match=refusal) as refused:
        Proxy.parse(url, {})
    assert "s3cret" not in str(refused.value) and "mallory" not in str(refused.value)


@pytest.mark.parametrize("variable", [USERNAME_VARIABLE, PASSWORD_VARIABLE])
def test_half_the_credentials_are_refused(variable):
    with pytest.raises(InvalidInput, match="set both"):
        Proxy.parse("socks5://proxy.example:1080", {variable: CREDENTIALS[variable]})
