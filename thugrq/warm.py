"""Bring a worker, before it forks any horse, to where a process stands after its first analysis.

A horse is forked from its worker, so whatever the worker has done once, every horse inherits
for free; whatever it has not, every horse does again. What an analysis would otherwise redo in
each horse (measured in bench/README.md, "Where the time goes"):

- importing the modules Thug and its libraries import only on first use (DOM pieces, the
  encodings a page's charset detection tries);
- compiling the YARA rules of Thug's eight classifiers (and the operator's), which `ThugAPI()`
  does anew every time: thugrq.classifiers builds them once, and the warm-up builds them here;
- the caches Thug and its libraries fill on first use.

`prepare` does all that by analysing a built-in page set (a script, a redirect, a frame, a
download) served from memory, with no network and no socket, then freezes the heap the horses
inherit (`gc.freeze`): their collections skip it, so they neither walk it nor copy its pages.

Nothing of one analysis reaches another: the worker never analyses a job itself (each job runs
in a fresh horse that exits after it); the warm-up's own analysis state (Thug's logger, its
options, its classifiers' matches) is replaced by every `ThugAPI()`; classifiers are copied per
analysis (thugrq.classifiers). tests/test_warm.py checks that results equal those of a cold process.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import shutil
import signal
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from thugrq import truncation
from thugrq.limits import Downloads
from thugrq.options import Options
from thugrq.sandbox import confine

log = logging.getLogger("thugrq.warm")
#: The warm-up pages' address: a reserved name (RFC 2606) that no request can resolve, served
#: from memory by `_served_from_memory`.
WARM_UP_URL = "http://warm-up.thugrq.invalid/"



def _pe() -> bytes:
    """A minimal PE image, so that the warm-up exercises Thug's sample handling (pefile)."""
    dos = b"MZ" + b"\x90" * 58 + struct.pack("<I", 64)
    return dos + b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x102) + bytes(512)


PAGES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/": (
        200,
        {"Content-Type": "text/html", "Set-Cookie": "visit=1; Path=/"},
        b"""<html><head><title>warm-up</title><script src="/app.js"></script></head><body>
<p id="p">text</p><iframe src="/frame"></iframe><a href="/final">link</a>
<script>var s = "a" + "b"; eval("var e = 1;"); document.write("<div>" + s + "</div>");
document.getElementById("p").innerHTML = "<b>bold</b>"; document.cookie = "seen=1";
setTimeout(function () { window.location = "/next"; }, 10);</script></body></html>""",
    ),
    "/app.js": (
        200,
        {"Content-Type": "application/javascript"},
        b'var d = document.createElement("div"); d.setAttribute("id", "x"); navigator.userAgent;',
    ),
    "/frame": (200, {"Content-Type": "text/html; charset=iso-8859-1"}, "<p>caf\xe9</p>".encode("latin-1")),
    "/next": (302, {"Location": "/final"}, b""),
    "/final": (
        200,
        {"Content-Type": "text/html"},
        b'<html><body><script>document.location.href = "/sample.exe";</script></body></html>',
    ),
    "/sample.exe": (200, {"Content-Type": "application/octet-stream"}, _pe()),
}


def prepare() -> dict[str, str]:
    """Warm this process for the horses it will fork: import Thug, analyse the built-in pages,
    freeze the heap; returns Thug's versions. Call it once, before the first fork."""
    from thugrq import analysis

    analysis.load_thug()
    thug_log = logging.getLogger("Thug")
    scratch = tempfile.mkdtemp(prefix="thugrq-warm-up-")
    previous_cwd, previous_logbase = os.getcwd(), os.environ.get("THUG_LOGBASE")
    previous_alarm = signal.getsignal(signal.SIGALRM)  # Thug's watchdog takes SIGALRM
    try:
        os.chdir(scratch)
        os.environ["THUG_LOGBASE"] = scratch
        options = Options()
        downloads = Downloads(options.max_response_bytes, options.max_download_bytes)
        thug_log.disabled = True  # its trace would only be noise in the worker's log
        with confine(scratch, truncation.Capped()), _served_from_memory():
            analysis._run_thug(WARM_UP_URL, options, scratch, downloads, None)
    except Exception as error:  # noqa: BLE001 - a worker that could not warm up still works
        log.warning("warm-up failed, each analysis starts cold: %s: %s", type(error).__name__, error)
    finally:
        thug_log.disabled = False
        signal.signal(signal.SIGALRM, previous_alarm)
        os.chdir(previous_cwd)
        if previous_logbase is None:
            os.environ.pop("THUG_LOGBASE", None)
        else:
            os.environ["THUG_LOGBASE"] = previous_logbase
        shutil.rmtree(scratch, ignore_errors=True)
        thug_log.ThugLogging = None  # the warm-up's log: no horse may ever report it as its own
    gc.collect()
    gc.freeze()
    return analysis.thug_versions()


@contextmanager
def _served_from_memory() -> Iterator[None]:
    """Within the block, requests answers every request from PAGES (404 for anything else),
    through its own response building, without opening a socket."""
    from requests.adapters import HTTPAdapter
    from urllib.parse import urlsplit
    from urllib3 import HTTPResponse

    def send(adapter: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        status, headers, body = PAGES.get(urlsplit(request.url).path, (404, {}, b""))
        raw = HTTPResponse(
            body=io.BytesIO(body), headers=headers, status=status, preload_content=False
        )
        return adapter.build_response(request, raw)

    original = HTTPAdapter.send
    HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]
