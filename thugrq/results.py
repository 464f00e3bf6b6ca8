"""The result document: what `analyze` returns, what `thugrq result` and rq-dashboard show.

It leads with the summary an analyst reads first and carries Thug's JSON log. A hostile page
must not fill Redis: long strings and lists are capped, and the whole document is bounded (the
worker's --max-result-bytes); `truncated` says what was cut from which part.

The caps and the bound themselves live in thugrq.truncation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from thugrq.defaults import DEFAULT_MAX_RESULT_BYTES
from thugrq.resolutions import PROXY
from thugrq.samples import summaries
from thugrq.truncation import MAX_ITEMS, MAX_STRING, SUMMARY_ITEMS, SUMMARY_STRING, bound, cap_into

SCHEMA = "thugrq.result/1"

STATUS_COMPLETED = "completed"
STATUS_TIMEOUT = "timeout"
STATUS_ERROR = "error"
#: The first URL was refused before any connection (a private target, see thugrq.targets).
STATUS_REFUSED = "refused"

#: Connection methods by which Thug records the browser moving to another page.
NAVIGATION_METHODS = frozenset({"http-redirect", "meta", "href", "window open"})


def build(
    *,
    url: str,
    options: dict[str, Any],
    worker: dict[str, Any],
    thug: dict[str, Any],
    started: datetime,
    ended: datetime,
    status: str,
    error: str | None,
    log: dict[str, Any] | None,
    refused: Sequence[dict[str, Any]] = (),
    blocked_writes: Sequence[dict[str, str]] = (),
    limited: Sequence[dict[str, Any]] = (),
    dns: Sequence[dict[str, Any]] = (),
    samples: Sequence[dict[str, Any]] | None = None,
    max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> dict[str, Any]:
    """Assemble the versioned result document, at most `max_bytes` as stored (`bound`);
    `refused` lists the connections the worker refused during the analysis (thugrq.targets),
    `blocked_writes` the file changes outside its directory (thugrq.sandbox), `limited` the
    fetches abandoned at a download cap (thugrq.limits), `dns` the host names resolved and
    their answers (thugrq.resolutions): `Capped` lists; `samples` the downloaded files as
    thugrq.samples.summaries described (and kept) them, else they are described here."""
    log = log or {}
    truncated: dict[str, Counter[str]] = {}
    summary = {
        **summarize(url, log, samples), "refused": refused, "blocked_writes": blocked_writes,
        "limited": limited, "dns": dns,
    }
    document = {
        "schema": SCHEMA,
        "url": url,
        "options": options,
        "status": status,
        "error": cap_into(truncated, "error", error, SUMMARY_STRING, SUMMARY_ITEMS),
        "worker": worker,
        "thug": thug,
        "started": started.isoformat(),
        "ended": ended.isoformat(),
        "duration": round((ended - started).total_seconds(), 3),
        "summary": {
            key: cap_into(truncated, f"summary.{key}", value, SUMMARY_STRING, SUMMARY_ITEMS)
            for key, value in summary.items()
        },
        "log": {
            key: cap_into(truncated, f"log.{key}", value, MAX_STRING, MAX_ITEMS)
            for key, value in log.items()
        },
    }
    return bound(document, max_bytes, truncated)


def summarize(
    url: str, log: dict[str, Any], samples: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The facts an analyst reads first, taken from Thug's JSON log; the downloaded files as
    `samples` describes them, else hashed here (not kept)."""
    connections = _list(log, "connections")
    chain = redirect_chain(url, connections)
    if samples is None:
        samples = summaries(_list(log, "files"), None, SUMMARY_ITEMS)
    return {
        "final_url": chain[-1]["url"],
        "redirect_chain": chain,
        "locations": [
            {
                "url": entry.get("url"),
                "status": entry.get("status"),
                "content_type": entry.get("content-type"),
                "mimetype": entry.get("mimetype"),
                "md5": entry.get("md5"),
                "sha256": entry.get("sha256"),
                "size": entry.get("size"),
            }
            for entry in _list(log, "locations")
        ],
        "exploits": [
            {
                "url": entry.get("url"),
                "module": entry.get("module"),
                "description": entry.get("description"),
                "cve": entry.get("cve"),
            }
            for entry in _list(log, "exploits")
        ],
        "classifiers": [
            {
                "classifier": entry.get("classifier"),
                "rule": entry.get("rule"),
                "url": entry.get("url"),
                "tags": entry.get("tags"),
            }
            for entry in _list(log, "classifiers")
        ],
        "samples": list(samples),
        "counts": {
            "locations": len(_list(log, "locations")),
            "connections": len(connections),
            "behaviors": len(_list(log, "behavior")),
            "code_snippets": len(_list(log, "code")),
            "exploits": len(_list(log, "exploits")),
            "classifiers": len(_list(log, "classifiers")),
            "samples": len(samples),
        },
    }


def redirect_chain(url: str, connections: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every page the browser moved through, in order, starting at the submitted URL.

    Thug logs each move as a connection (source, destination, method); sub-resources such as
    scripts and frames use other methods and are not part of the chain.
    """
    connections = list(connections)
    start = next(
        (c.get("destination") for c in connections if c.get("source") == "about:blank"), url
    )
    chain = [{"url": start, "via": None}]
    seen = {start}
    for connection in connections:
        source, destination = connection.get("source"), connection.get("destination")
        if (
            source == chain[-1]["url"]
            and connection.get("method") in NAVIGATION_METHODS
            and destination not in seen
        ):
            chain.append({"url": destination, "via": connection.get("method")})
            seen.add(destination)
    return chain


def _list(log: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [entry for entry in log.get(key) or [] if isinstance(entry, dict)]


def analysed_from(document: dict[str, Any]) -> str | None:
    """The country an analysis was made from: its worker's verified location's, else the
    country the worker was told (None: unknown)."""
    worker = document.get("worker") or {}
    where = worker.get("location")
    return where.get("country") if isinstance(where, dict) else worker.get("country")


def _whereabouts(worker: dict[str, Any]) -> str:
    """The location verified for an analysis, on one line."""
    where = worker.get("location")
    if not isinstance(where, dict):
        return "not verified (the worker was told its country or queues)"
    if not where.get("country"):
        return f"unknown: the location lookup of {where.get('checked')} failed"
    network = f"AS{where.get('asn')} {where.get('as_name') or ''}".rstrip()
    return f"{where.get('address')} in {where['country']}, {network}, checked {where.get('checked')}"


def _resolution(entry: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """One DNS answer on one line; with its time when the name got several answers."""
    host = entry.get("host")
    if entry.get("resolver") == PROXY:
        return f"{host}: resolved by the proxy"
    addresses = ", ".join(map(str, entry.get("addresses") or []))
    answer = f"{host}: {entry['error']}" if entry.get("error") else f"{host} -> {addresses}"
    repeated = sum(other.get("host") == host for other in entries) > 1
    return f"{answer}  (at {entry.get('resolved_at')})" if repeated else answer


def format_summary(document: dict[str, Any], replaced: Sequence[dict[str, Any]] = ()) -> str:
    """The human view of a result document, as `thugrq result` prints it, and of the refused
    outcomes of attempts that another replaced (thugrq.fencing.superseded), which are not it."""
    summary = document.get("summary") or {}
    worker = document.get("worker") or {}
    status = document.get("status")
    if document.get("error"):
        status = f"{status}: {document['error']}"
    lines = [
        f"URL          {document.get('url')}",
        f"Status       {status}",
        f"Analysed     {document.get('started')} ({document.get('duration')} s) by "
        f"{worker.get('name') or '?'} ({worker.get('country') or 'no country'}), "
        f"as {(document.get('options') or {}).get('useragent')}",
        f"From         {_whereabouts(worker)}",
        f"Final URL    {summary.get('final_url')}",
    ]
    chain = summary.get("redirect_chain") or []
    if len(chain) > 1:
        lines.append("Redirects")
        lines += [
            f"  {hop.get('url')}" + (f"  ({hop.get('via')})" if hop.get("via") else "") for hop in chain
        ]
    counts = summary.get("counts") or {}
    lines.append(
        "Counts       "
        + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
    )
    for exploit in summary.get("exploits") or []:
        cve = f" ({exploit['cve']})" if exploit.get("cve") else ""
        lines.append(f"Exploit      {exploit.get('module')}: {exploit.get('description')}{cve}")
    for sample in summary.get("samples") or []:
        kept = "kept" if sample.get("kept") else sample.get("reason") or "not kept"
        lines.append(
            f"Sample       {sample.get('type')} {sample.get('size')} bytes from "
            f"{sample.get('url')}, {kept}\n"
            f"             md5 {sample.get('md5')}  sha256 {sample.get('sha256')}"
        )
    for match in summary.get("classifiers") or []:
        lines.append(f"Classifier   {match.get('classifier')}: {match.get('rule')} at {match.get('url')}")
    for entry in summary.get("dns") or []:
        lines.append(f"Resolved     {_resolution(entry, summary['dns'])}")
    for refusal in summary.get("refused") or []:
        lines.append(
            f"Refused      {refusal.get('address')} port {refusal.get('port')}: {refusal.get('reason')}"
        )
    for write in summary.get("blocked_writes") or []:
        lines.append(f"Blocked      {write.get('operation')} {write.get('path')}")
    for fetch in summary.get("limited") or []:
        lines.append(f"Limited      {fetch.get('url')}: {fetch.get('reason')}")
    for path, cut in (document.get("truncated") or {}).items():
        lines.append(f"Truncated    {path}: " + ", ".join(f"{n} {what}" for what, n in cut.items()))
    for attempt in replaced:
        outcome = (attempt.get("result") or {}).get("status") or "failed"
        lines.append(
            f"Superseded   an earlier attempt by {attempt.get('worker')} ended {outcome} after "
            f"it was replaced: refused, not this job's outcome"
        )
    return "\n".join(lines)
