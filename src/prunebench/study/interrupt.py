"""Ctrl-C during a study, stopped between two stored rows (see :class:`InterruptGuard`)."""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Literal


class InterruptGuard:
    """Ctrl-C during a study: SIGINT raises KeyboardInterrupt as usual *and* sets a flag that
    the executor checks before it stores a row and between jobs. A dependency that swallows
    the KeyboardInterrupt (a bare ``except:`` deep in a library, seen in CI: the study ran to
    the end and exited 0) then still stops the study at the next job boundary, and the job
    the interrupt hit is not stored (its figures may be cut short); it runs again on resume.
    A SIGINT already ignored (``nohup``, a background job) stays ignored."""

    def __init__(self) -> None:
        self.hit = False
        self._prev: Any = None

    def __enter__(self) -> "InterruptGuard":
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._prev = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.hit = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """KeyboardInterrupt when Ctrl-C was pressed since the guard was entered."""
        if self.hit:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> Literal[False]:
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)
            self._prev = None
        return False

