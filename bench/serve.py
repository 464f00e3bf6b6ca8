"""Serve the test site (tests/site.py) on 127.0.0.1 in a process of its own.

Prints the port on the first line of stdout, then serves until SIGTERM. Run by bench/run.py,
so the site's threads never share a process (or a GIL) with what is being measured.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.site import Site  # noqa: E402 - after the path is set


def main() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    with Site("127.0.0.1") as site:
        print(site.port, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main()
