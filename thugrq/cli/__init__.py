"""thugrq's command line, the only part of thugrq that imports click.

- `thugrq` (`main`, in `commands`): the group of `submission`, `jobs`, `samples`, `fleet`,
  `dashboard` and `stack` commands, sharing what is in `helpers`;
- `thugrq-worker` (`worker.main`), `./bin/run` (`run.main`), and the local stack's dashboard
  (`python -m thugrq.cli.dashboard`): each its own module, so that a worker or a dashboard
  loads its command alone, not every command's libraries.

`main` is therefore imported on first use (`from thugrq.cli import main`).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "main":
        from thugrq.cli.commands import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
