"""Spot cloaking: compare the analyses of one URL made from different countries or browsers.

Malicious sites show different pages to different visitors, and malicious networks give
different DNS answers to different countries. Given the finished analyses of a group, this
tells, per URL, which aspects (final URL, redirect chain, exploits, samples, and the DNS answers
of each host name) came out differently, and which queue/personality saw what.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from thugrq.resolutions import WORKER


def _exploits(summary: dict[str, Any]) -> str:
    found = {
        exploit.get("module") + (f" ({exploit['cve']})" if exploit.get("cve") else "")
        for exploit in summary.get("exploits") or []
    }
    return ", ".join(sorted(found)) or "none"


def _samples(summary: dict[str, Any]) -> str:
    found = {f"{s.get('type')} {s.get('sha256')}" for s in summary.get("samples") or []}
    return ", ".join(sorted(found)) or "none"


ASPECTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "final URL": lambda summary: str(summary.get("final_url")),
    "redirect chain": lambda summary: " -> ".join(
        hop["url"] for hop in summary.get("redirect_chain") or []
    ),
    "exploits": _exploits,
    "samples": _samples,
}


def _dns_answers(summary: dict[str, Any]) -> dict[str, str]:
    """Host name -> the answers the worker got, in order. Names resolved by a proxy are left
    out: their answers are unknown, so they cannot differ."""
    answers: dict[str, list[str]] = defaultdict(list)
    for entry in summary.get("dns") or []:
        if isinstance(entry, dict) and entry.get("resolver") == WORKER:
            addresses = ", ".join(map(str, entry.get("addresses") or [])) or "no addresses"
            answers[str(entry.get("host"))].append(entry.get("error") or addresses)
    return {host: " then ".join(seen) for host, seen in answers.items()}


#: Aspects seen once per host name: aspect -> (summary -> host -> what was seen). An analysis
#: without a host is left out of that host's comparison.
HOST_ASPECTS: dict[str, Callable[[dict[str, Any]], dict[str, str]]] = {
    "DNS answers": _dns_answers,
}


@dataclass(frozen=True)
class Analysis:
    """One finished analysis: the URL, who made it (`IT/winxpie60`), and its summary."""

    url: str
    seen_by: str
    summary: dict[str, Any]


@dataclass(frozen=True)
class Difference:
    """One aspect of one URL (of one host name, for HOST_ASPECTS) that not every analysis saw
    the same way."""

    url: str
    aspect: str
    #: What was seen -> who saw it.
    seen: dict[str, list[str]]
    host: str | None = None

    @property
    def title(self) -> str:
        return f"{self.aspect} of {self.host}" if self.host else self.aspect

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "aspect": self.aspect, "host": self.host, "seen": self.seen}


def _seen(summary: dict[str, Any]) -> dict[tuple[str, str | None], str]:
    """What one analysis saw: (aspect, host name or None) -> value."""
    seen: dict[tuple[str, str | None], str] = {
        (aspect, None): value_of(summary) for aspect, value_of in ASPECTS.items()
    }
    for aspect, values_of in HOST_ASPECTS.items():
        seen.update({(aspect, host): value for host, value in values_of(summary).items()})
    return seen


def compare(analyses: Iterable[Analysis]) -> list[Difference]:
    """Every aspect of every URL on which the analyses disagree."""
    by_url: dict[str, list[Analysis]] = defaultdict(list)
    for analysis in analyses:
        by_url[analysis.url].append(analysis)
    differences = []
    order = list(ASPECTS) + list(HOST_ASPECTS)
    for url, group in sorted(by_url.items()):
        by_aspect: dict[tuple[str, str | None], dict[str, list[str]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for analysis in group:
            for key, value in _seen(analysis.summary).items():
                by_aspect[key][value].append(analysis.seen_by)
        for aspect, host in sorted(by_aspect, key=lambda key: (order.index(key[0]), key[1] or "")):
            seen = by_aspect[aspect, host]
            if len(seen) > 1:
                who_saw = {value: sorted(who) for value, who in sorted(seen.items())}
                differences.append(Difference(url, aspect, who_saw, host))
    return differences
