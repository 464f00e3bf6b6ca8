"""Keep an analysis' file writes inside its scratch directory.

Thug emulates ActiveX objects that write files for a page (Scripting.FileSystemObject and the
like), and joins page-controlled names onto directories, where `../../` or `..\\..\\` would
escape. While an analysis runs, an audit hook (PEP 578) refuses every Python-level operation
that would create, change or delete a file outside the scratch directory, and records it.
Reads are not restricted. An audit hook cannot be removed; outside an analysis it does nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from thugrq.truncation import Capped

#: Audit events that change the file system, and which of their arguments are paths.
MUTATING_EVENTS: dict[str, tuple[int, ...]] = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.symlink": (1,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (0, 1),
    "shutil.rmtree": (0,),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
ALWAYS_WRITABLE = frozenset({os.devnull})

_root: str | None = None
_blocked: Capped | None = None
_installed = False


class SandboxViolation(PermissionError):
    """A write outside the analysis' scratch directory."""


def _inside(path: Any) -> bool:
    if isinstance(path, int):  # a file descriptor: already open, nothing new is reached
        return True
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real in ALWAYS_WRITABLE or real == _root or real.startswith(_root + os.sep)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _root is None:
        return
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, 0))[:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        paths = (path,) if writes and path is not None else ()
    elif event in MUTATING_EVENTS:
        paths = tuple(args[i] for i in MUTATING_EVENTS[event] if i < len(args))
    else:
        return
    for path in paths:
        if not _inside(path):
            if _blocked is not None:
                _blocked.append({"operation": event, "path": os.fsdecode(path)[:500]})
            raise SandboxViolation(f"thugrq: {event} outside the analysis directory refused: {path!r}")


@contextmanager
def confine(root: str, blocked: Capped) -> Iterator[None]:
    """Within the block, refuse file changes outside `root` (recording them in `blocked`, which
    bounds itself: a page may try without end); temporary files go to `root` too."""
    global _root, _blocked, _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    previous_tempdir = tempfile.tempdir
    tempfile.tempdir = root
    _root, _blocked = os.path.realpath(root), blocked
    try:
        yield
    finally:
        _root, _blocked = None, None
        tempfile.tempdir = previous_tempdir
