"""Caps and a total bound on what a page can make a result document hold.

A hostile page must not fill Redis, nor the worker's memory: lists it can grow without end are
`Capped` while it runs, long strings and lists are cut (`cap`), and the whole document is
shrunk to the worker's --max-result-bytes as stored (`bound`), largest parts first and each
keeping its beginning. What was cut is counted, for the document's `truncated` record.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

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


def cap_into(
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
