"""A hard deadline for one analysis, that holds even when JavaScript never yields.

Thug's own watchdog uses SIGALRM, whose Python handler only runs once control is back in
Python: a script such as `while(true){}` keeps V8 busy and the handler never runs (nor does
RQ's own job timeout, also SIGALRM, which Thug's watchdog cancels anyway). STPyV8 releases the
GIL while JavaScript runs, so a thread can still act:

1. at the deadline it interrupts the main thread (SIGUSR2, whose handler raises the given
   exception): this ends an analysis that is waiting in Python, such as the first fetch from
   a server that never answers, before Thug's watchdog is even armed;
2. GRACE seconds later, if the analysis has still not returned, it is stuck in JavaScript and
   the thread calls `on_overrun`, which records a result and ends the process.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import TracebackType

INTERRUPT_SIGNAL = signal.SIGUSR2
#: Seconds between interrupting the main thread and giving up on it.
GRACE = 3.0


class Deadline:
    """`with Deadline(seconds, exception, on_overrun):` bounds the block as described above."""

    def __init__(
        self,
        seconds: float,
        exception: type[BaseException],
        on_overrun: Callable[[], None] | None = None,
    ) -> None:
        self.seconds = seconds
        self.exception = exception
        self.on_overrun = on_overrun
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._main = threading.main_thread().ident
        self._previous_handler = None

    def __enter__(self) -> Deadline:
        self._previous_handler = signal.signal(INTERRUPT_SIGNAL, self._interrupted)
        threading.Thread(target=self._watch, name="thugrq-deadline", daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:  # waits for an overrun in progress, which ends the process
            self._ended.set()
        signal.signal(INTERRUPT_SIGNAL, self._previous_handler)

    def _interrupted(self, signum: int, frame: object) -> None:
        if not self._ended.is_set():
            raise self.exception

    def _watch(self) -> None:
        if self._ended.wait(self.seconds):
            return
        with self._lock:
            if self._ended.is_set():
                return
            signal.pthread_kill(self._main, INTERRUPT_SIGNAL)
        if self._ended.wait(GRACE) or self.on_overrun is None:
            return
        with self._lock:
            if not self._ended.is_set():
                self.on_overrun()
