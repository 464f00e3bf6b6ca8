"""The bare limit: Thug imported and warmed up once, then one forked analysis per URL, no queue.

bench/run.py starts this as a process of its own and writes URLs to its stdin, one a line. For
each, it forks a child that runs `thugrq.analysis.analyze` (the very function a thugrq work
horse runs, here with the environment's context) and sends the result document back over a
pipe as JSON: the least any design must do to get a result out of a forked analysis. It
answers on stdout with one JSON line:

- `seconds`: from the fork to the result document parsed in this process (what the thugrq
  figure is compared with: there, from the enqueue to the result read back from Redis);
- `reaped`: from the fork to the child reaped (adds the child's exit, what a loop of analyses
  pays per URL);
- `maxrss_kb`: the child's peak resident size (ru_maxrss from wait4, exact);
- `document`: the result document's summary, for the caller to check.

The difference between this and thugrq is the queue: Redis, RQ's worker, the job and result
round trips.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from thugrq import analysis, warm  # noqa: E402
from thugrq.context import AnalysisContext  # noqa: E402
from thugrq.options import Options  # noqa: E402


def analyse_in_child(url: str, options: dict, context: AnalysisContext, result_fd: int) -> None:
    """The forked child: analyse, send the result document, exit. Never returns."""
    code = 1
    try:
        os.dup2(2, 1)  # Thug may print; stdout is the parent's answer channel
        try:
            document = analysis.analyze(url, options, context=context)
        except BaseException as error:  # noqa: BLE001 - report anything
            document = {"status": "crashed", "error": f"{type(error).__name__}: {error}"}
        payload = json.dumps(document).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(result_fd, view):]
        os.close(result_fd)
        code = 0
    finally:
        os._exit(code)


def main() -> None:
    warm.prepare()  # once, as a thugrq worker does before its first horse
    options = Options().to_dict()
    context = AnalysisContext()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        url = line.strip()
        if not url:
            continue
        read_fd, write_fd = os.pipe()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            analyse_in_child(url, options, context, write_fd)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as channel:
            payload = channel.read()
        document = json.loads(payload) if payload else None
        seconds = time.perf_counter() - started
        _, status, usage = os.wait4(pid, 0)
        reaped = time.perf_counter() - started
        if document is None:
            document = {"status": "crashed", "error": f"child exited with status {status}"}
        answer = {
            "seconds": seconds,
            "reaped": reaped,
            "maxrss_kb": usage.ru_maxrss,
            "document": {k: document.get(k) for k in ("status", "error", "summary")},
        }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
