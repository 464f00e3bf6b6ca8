"""Bounds on what one analysis may take: bytes downloaded and memory.

Downloads: Thug streams every response (requests, `stream=True`) and reads the body later, all
at once. A session bound to a `Downloads` reads each body itself, in chunks, and stops at the
per-response cap or when the analysis has downloaded its total: the fetch then fails as Thug's
failed fetches do, and is listed in the result (`summary.limited`).

Memory: each horse runs under an address-space limit (RLIMIT_AS). At that limit allocations
fail, and what fails then is chaotic: MemoryErrors that Thug swallows, crashes in C code, hangs.
So a thread in the horse ends it a little earlier, at 7/8 of the limit; the kernel limit
stays for allocations faster than the watch. The last size the thread saw is kept in memory
shared with the worker, which so tells a memory-limit death from a crash.
"""

from __future__ import annotations

import importlib
import mmap
import os
import resource
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import requests

from thugrq import truncation
from thugrq.defaults import MIB

#: Bytes read from a response body at a time.
CHUNK = 64 * 1024
#: Seconds between the horse's looks at its address space.
WATCH_INTERVAL = 0.1
#: Where a memory-limit death is named, in job failures and result errors.
MEMORY_REASON = "memory limit exceeded"


class FetchLimited(requests.RequestException):
    """A response body went past a download cap; the fetch is abandoned."""


class Downloads:
    """The download caps of one analysis and what they stopped (`limited`)."""

    def __init__(self, per_response: int, total: int) -> None:
        self.per_response = per_response
        self.total = total
        self.received = 0
        self.limited = truncation.Capped()  # every fetch after the total is reached lands here

    def read(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """Read the body of `response` (a requests response hook), or raise FetchLimited."""
        if response._content_consumed:  # read already (a redirect hop, or here before)
            return response
        allowed = min(self.per_response, self.total - self.received)
        body = bytearray()
        for chunk in response.iter_content(CHUNK):
            body += chunk
            if len(body) > allowed:
                response.close()
                raise FetchLimited(self._limit(response.url, len(body), allowed))
        self.received += len(body)
        response._content = bytes(body)
        return response

    def _limit(self, url: str, received: int, allowed: int) -> str:
        if allowed < self.per_response:
            reason = f"the analysis downloaded {self.total} bytes in all (max_download_bytes)"
        else:
            reason = f"the response is larger than {self.per_response} bytes (max_response_bytes)"
        self.limited.append({"url": url, "received": received, "reason": reason})
        return f"{url}: {reason}"


def session_class(downloads: Downloads) -> type:
    """Thug's HTTPSession, reading every body through `downloads`."""
    from thug.DOM.HTTPSession import HTTPSession

    class LimitedSession(HTTPSession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.session.hooks["response"].append(downloads.read)  # redirect hops too

        def fetch(self, *args: Any, **kwargs: Any) -> requests.Response | None:
            try:
                response = super().fetch(*args, **kwargs)
                # Responses of Thug's async prefetcher come from another session: read here.
                return downloads.read(response) if response is not None else None
            except FetchLimited:
                return None  # Thug's answer for a fetch that did not happen

    return LimitedSession


@contextmanager
def limited_downloads(downloads: Downloads) -> Iterator[None]:
    """While the block runs, Thug's analyses fetch through a session bound to `downloads`.

    ThugAPI.run_remote builds its session from the name HTTPSession of its own module, and
    offers no other way in; the name is restored afterwards."""
    module = importlib.import_module("thug.ThugAPI.ThugAPI")
    original = module.HTTPSession
    module.HTTPSession = session_class(downloads)
    try:
        yield
    finally:
        module.HTTPSession = original


class MemoryBound:
    """The address-space limit of a worker's horses, and the horse's watch on it (see above)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.watermark = limit * 7 // 8
        self._seen = mmap.mmap(-1, 8)  # shared with the horses the worker forks

    def bound_horse(self) -> None:
        """In a new horse: apply the limit and start watching."""
        self._record(0)
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        bound = self.limit if hard == resource.RLIM_INFINITY else min(self.limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (bound, bound))
        statm = open("/proc/self/statm", "rb")  # noqa: SIM115 - the thread's for the horse's life
        threading.Thread(target=self._watch, args=(statm,), name="thugrq-memory", daemon=True).start()

    def death_reason(self) -> str | None:
        """Why the horse that just died abnormally did, if the memory limit is the reason."""
        seen = struct.unpack("Q", self._seen[:8])[0]
        self._record(0)  # the next horse's death is judged on its own
        if seen < self.watermark:
            return None
        return (
            f"{MEMORY_REASON}: the analysis reached {seen // MIB} MiB of address space "
            f"(worker --max-memory {self.limit // MIB} MiB)"
        )

    def _watch(self, statm: BinaryIO) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while True:
            statm.seek(0)
            size = int(statm.read().split()[0]) * page
            self._record(size)
            if size >= self.watermark:
                os.write(2, f"thugrq horse {os.getpid()}: {MEMORY_REASON}\n".encode())
                os._exit(1)
            time.sleep(WATCH_INTERVAL)

    def _record(self, size: int) -> None:
        self._seen[:8] = struct.pack("Q", size)
