"""The three pages every per-URL comparison analyses, and how to tell an analysis of each worked.

The pages come from the test site (tests/site.py), served on 127.0.0.1. Each check reads the
summary that thugrq.results.summarize builds from Thug's JSON log, whichever way Thug ran (the
`thug` command's analysis.json goes through the same function), so a run that silently failed
fast can never pass for a fast run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _plain(url: str, summary: dict[str, Any]) -> str | None:
    if summary["final_url"] != url or summary["counts"]["locations"] < 1:
        return f"expected one page at {url}, got final URL {summary['final_url']}"
    return None


def _redirect(url: str, summary: dict[str, Any]) -> str | None:
    chain = [hop["url"] for hop in summary["redirect_chain"]]
    if len(chain) != 4 or not chain[-1].endswith("/chain/final"):
        return f"expected a 4-hop chain ending at /chain/final, got {chain}"
    return None


def _download(url: str, summary: dict[str, Any]) -> str | None:
    if not summary["samples"]:
        return "expected the PE sample to be downloaded, got no sample"
    return None


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    check: Callable[[str, dict[str, Any]], str | None]


PAGES = (
    Page("plain page", "/chain/final", _plain),
    Page("redirect chain", "/chain/start", _redirect),
    Page("download", "/download", _download),
)

BY_PATH = {page.path: page for page in PAGES}


def problem(url: str, summary: dict[str, Any] | None) -> str | None:
    """Why the analysis summarised in `summary` is not a complete analysis of `url`, or None."""
    if not summary:
        return "no summary"
    path = "/" + url.split("/", 3)[3]
    return BY_PATH[path].check(url, summary)
