"""Spot cloaking: compare the analyses of one URL made from different countries or browsers.

Malicious sites show different pages to different visitors. Given the finished analyses of a
group, this tells, per URL, which aspects (final URL, redirect chain, exploits, samples) came
out differently, and which queue/personality saw what.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


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


@dataclass(frozen=True)
class Analysis:
    """One finished analysis: the URL, who made it (`IT/winxpie60`), and its summary."""

    url: str
    seen_by: str
    summary: dict[str, Any]


@dataclass(frozen=True)
class Difference:
    """One aspect of one URL that not every analysis saw the same way."""

    url: str
    aspect: str
    #: What was seen -> who saw it.
    seen: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "aspect": self.aspect, "seen": self.seen}


def compare(analyses: Iterable[Analysis]) -> list[Difference]:
    """Every aspect of every URL on which the analyses disagree."""
    by_url: dict[str, list[Analysis]] = defaultdict(list)
    for analysis in analyses:
        by_url[analysis.url].append(analysis)
    differences = []
    for url, group in sorted(by_url.items()):
        for aspect, value_of in ASPECTS.items():
            seen: dict[str, list[str]] = defaultdict(list)
            for analysis in group:
                seen[value_of(analysis.summary)].append(analysis.seen_by)
            if len(seen) > 1:
                differences.append(
                    Difference(url, aspect, {value: sorted(who) for value, who in sorted(seen.items())})
                )
    return differences
