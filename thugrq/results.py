"""The result document: what `analyze` returns, what `thugrq result` and rq-dashboard show.

It leads with the summary an analyst reads first and carries Thug's JSON log. A hostile page
must not fill Redis: long strings and lists are capped, and the whole document is bounded (the
worker's --max-result-bytes); `truncated` says what was cut from which part.

Longer than 350 lines because the document's schema (summary, caps, bound, the human view)
is read in one place; the bounding (`cap`, `bound`, `fit`) is the part to move out first.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from thugrq.defaults import DEFAULT_MAX_RESULT_BYTES

SCHEMA = "thugrq.result/1"

STATUS_COMPLETED = "completed"
STATUS_TIMEOUT = "timeout"
STATUS_ERROR = "error"
#: The first URL was refused before any connection (a private target, see thugrq.targets).
STATUS_REFUSED = "refused"

#: Longest string kept in the stored log (page contents, snippets, base64 samples).
MAX_STRING = 64 * 1024
#: Most entries kept in any one list of the stored log.
MAX_ITEMS = 1000
#: Most entries kept in any one list of the summary, and longest string kept there (and in
#: the error); the log keeps more of both.
SUMMARY_ITEMS = 100
SUMMARY_STRING = 4096
#: Bytes of each summary list always kept, however far the document must shrink.
SUMMARY_FLOOR = 4096
#: Room left for the `truncated` record when the document is shrunk to its bound.
TRUNCATED_ROOM = 4096
#: An entry cut short when shrinking needs at least this much room; less, and it is dropped.
MIN_ROOM = 64

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
    max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> dict[str, Any]:
    """Assemble the versioned result document, at most `max_bytes` as stored (`bound`);
    `refused` lists the connections the worker refused during the analysis (thugrq.targets),
    `blocked_writes` the file changes outside its directory (thugrq.sandbox), `limited` the
    fetches abandoned at a download cap (thugrq.limits): `Capped` lists."""
    log = log or {}
    truncated: dict[str, Counter[str]] = {}
    summary = {
        **summarize(url, log), "refused": refused, "blocked_writes": blocked_writes,
        "limited": limited,
    }
    document = {
        "schema": SCHEMA,
        "url": url,
        "options": options,
        "status": status,
        "error": _capped(truncated, "error", error, SUMMARY_STRING, SUMMARY_ITEMS),
        "worker": worker,
        "thug": thug,
        "started": started.isoformat(),
        "ended": ended.isoformat(),
        "duration": round((ended - started).total_seconds(), 3),
        "summary": {
            key: _capped(truncated, f"summary.{key}", value, SUMMARY_STRING, SUMMARY_ITEMS)
            for key, value in summary.items()
        },
        "log": {
            key: _capped(truncated, f"log.{key}", value, MAX_STRING, MAX_ITEMS)
            for key, value in log.items()
        },
    }
    return bound(document, max_bytes, truncated)


class Capped(list[Any]):
    """A list that keeps the first `limit` entries appended and counts the rest in `dropped`:
    for what a page can make the worker record without end (refused connections, blocked
    writes), so that memory stays bounded too, not only the stored result."""

    def __init__(self, limit: int = SUMMARY_ITEMS) -> None:
        super().__init__()
        self.limit, self.dropped = limit, 0

    def append(self, entry: Any) -> None:
        if len(self) < self.limit:
            super().append(entry)
        else:
            self.dropped += 1


def summarize(url: str, log: dict[str, Any]) -> dict[str, Any]:
    """The facts an analyst reads first, taken from Thug's JSON log."""
    connections = _list(log, "connections")
    chain = redirect_chain(url, connections)
    samples = [_sample(entry) for entry in _list(log, "files")]
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
        "samples": samples,
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


def _sample(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        size: int | None = len(base64.b64decode(entry.get("data") or "", validate=False))
    except (binascii.Error, ValueError, TypeError):
        size = None
    return {
        "url": entry.get("url"),
        "type": entry.get("type"),
        "md5": entry.get("md5"),
        "sha1": entry.get("sha1"),
        "sha256": entry.get("sha256"),
        "size": size,
    }


def _list(log: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [entry for entry in log.get(key) or [] if isinstance(entry, dict)]


def cap(
    value: Any, max_string: int = MAX_STRING, max_items: int = MAX_ITEMS
) -> tuple[Any, Counter[str]]:
    """A copy of `value` with long strings and lists cut, and what was cut: `entries` (list
    items dropped, a Capped list's `dropped` included) and `characters`."""
    cut: Counter[str] = Counter()
    capped = _cap(value, max_string, max_items, cut)
    return capped, +cut  # without the zero counts


def _cap(value: Any, max_string: int, max_items: int, cut: Counter[str]) -> Any:
    if isinstance(value, str):
        if len(value) <= max_string:
            return value
        cut["characters"] += len(value) - max_string
        return _cut_string(value, max_string)
    if isinstance(value, dict):
        return {key: _cap(item, max_string, max_items, cut) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        cut["entries"] += max(len(value) - max_items, 0) + getattr(value, "dropped", 0)
        return [_cap(item, max_string, max_items, cut) for item in value[:max_items]]
    return value


def _capped(
    truncated: dict[str, Counter[str]], path: str, value: Any, max_string: int, max_items: int
) -> Any:
    """`value` capped, what was cut recorded in `truncated` under `path`."""
    capped, cut = cap(value, max_string, max_items)
    if cut:
        truncated[path] = cut
    return capped


def _cut_string(value: str, keep: int) -> str:
    return value[:keep] + f"...[{len(value) - keep} characters cut]"


def stored_size(document: Any) -> int:
    """Bytes `document` takes in Redis: RQ stores a job's result as base64 of its JSON."""
    return 4 * math.ceil(_size(document) / 3)


def _size(value: Any) -> int:
    """Bytes of `value` as JSON, as RQ's JSONSerializer writes it (ASCII, default separators)."""
    return len(json.dumps(value))


def bound(
    document: dict[str, Any], max_bytes: int, truncated: dict[str, Counter[str]]
) -> dict[str, Any]:
    """`document` with its `truncated` record, shrunk to at most `max_bytes` as stored.

    Thug's log shrinks first, then the summary's lists, each down to its first SUMMARY_FLOOR
    bytes; every part shrunk keeps its beginning, and what it lost is added to `truncated`
    (`bytes`: of JSON). The rest (status, URL, error, worker, the final URL, counts) is kept
    whole: defaults.MIN_MAX_RESULT_BYTES leaves room for it.
    """
    budget = max_bytes // 4 * 3 - TRUNCATED_ROOM  # JSON bytes whose base64 fits max_bytes
    over = _size(document) - budget
    for section, floor in (("log", 0), ("summary", SUMMARY_FLOOR)):
        if over > 0:
            over -= _shrink(document[section], section, over, floor, truncated)
    return {**document, "truncated": {path: dict(cut) for path, cut in truncated.items()}}


def _shrink(
    parts: dict[str, Any], section: str, over: int, floor: int, truncated: dict[str, Counter[str]]
) -> int:
    """Cut the largest of `parts` (all of the log's, the summary's lists) down to one size, as
    large as saves `over` bytes yet at least `floor`; returns the bytes saved."""
    sizes = {
        key: _size(value)
        for key, value in parts.items()
        if section == "log" or isinstance(value, list)
    }
    level = max(_level(list(sizes.values()), over), floor)
    saved = 0
    for key, size in sizes.items():
        if size > level:
            cut: Counter[str] = Counter()
            parts[key] = fit(parts[key], level, cut)
            cut["bytes"] = size - _size(parts[key])
            saved += cut["bytes"]
            truncated[f"{section}.{key}"] = truncated.get(f"{section}.{key}", Counter()) + cut
    return saved


def _level(sizes: list[int], over: int) -> int:
    """The largest size to which cutting every bigger one saves at least `over` (0 if none)."""
    low, high = 0, max(sizes, default=0)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(max(size - middle, 0) for size in sizes) >= over:
            low = middle
        else:
            high = middle - 1
    return low


def fit(value: Any, budget: int, cut: Counter[str]) -> Any:
    """The beginning of `value` that takes at most `budget` bytes as JSON; what is left out is
    counted in `cut` (`entries`, `characters`)."""
    if _size(value) <= budget:
        return value
    if isinstance(value, str):
        return _fit_string(value, budget, cut)
    if isinstance(value, (list, dict)):
        return _fit_entries(value, budget, cut)
    cut["entries"] += 1
    return None


def _fit_string(value: str, budget: int, cut: Counter[str]) -> str:
    """The longest beginning of `value` that fits with its "characters cut" note, or ""."""
    low, high = 0, len(value)
    while low < high:  # the size grows with the characters kept: search the longest that fits
        middle = (low + high + 1) // 2
        if _size(_cut_string(value, middle)) <= budget:
            low = middle
        else:
            high = middle - 1
    kept = _cut_string(value, low)
    cut["characters"] += len(value) - low
    return kept if _size(kept) <= budget else ""


def _fit_entries(value: list[Any] | dict[str, Any], budget: int, cut: Counter[str]) -> Any:
    """The first entries of a list or dict that fit in `budget`; the next one cut short into
    the room left (when there is MIN_ROOM), the rest counted as dropped."""
    is_dict = isinstance(value, dict)
    entries = list(value.items()) if is_dict else list(enumerate(value))
    kept: list[tuple[Any, Any]] = []
    used = 2  # the brackets
    for index, (key, item) in enumerate(entries):
        overhead = (2 if kept else 0) + (_size(str(key)) + 2 if is_dict else 0)
        room, size = budget - used - overhead, _size(item)
        if size > room:
            if room >= MIN_ROOM:
                kept.append((key, fit(item, room, cut)))
            cut["entries"] += len(entries) - len(kept)
            break
        kept.append((key, item))
        used += overhead + size
    return dict(kept) if is_dict else [item for _, item in kept]


def format_summary(document: dict[str, Any]) -> str:
    """The human view of a result document, as `thugrq result` prints it."""
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
        lines.append(
            f"Sample       {sample.get('type')} {sample.get('size')} bytes from {sample.get('url')}\n"
            f"             md5 {sample.get('md5')}  sha256 {sample.get('sha256')}"
        )
    for match in summary.get("classifiers") or []:
        lines.append(f"Classifier   {match.get('classifier')}: {match.get('rule')} at {match.get('url')}")
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
    return "\n".join(lines)
