"""A study's progress on stderr: a Rich bar on a terminal, plain lines anywhere else."""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class Display:
    """Progress on stderr: the current job, jobs done, and an ETA from the estimated cost of
    what is left, scaled by how fast the estimate has been met so far.

    On a terminal it is a Rich bar. Anywhere else (a log file, CI, a pipe) a live bar shows
    nothing, so it prints plain lines instead: one when the study starts, then one every
    ``every_jobs`` jobs (default: every 5% of them) or ``every_s`` seconds, whichever comes
    first, each with jobs done, failed and the estimated time left, and one at the end."""

    def __init__(self, enabled: bool, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.perf_counter, every_s: float = 60.0,
                 every_jobs: int | None = None):
        self.enabled = enabled
        self.p: Progress | None = None
        self.task: TaskID | None = None
        self.stream, self.clock = stream, clock
        self.every_s, self.every_jobs = every_s, every_jobs
        self.lines = False
        self.failures = 0

    def start(self, n_jobs: int, total_s: float) -> None:
        self.n, self.i = n_jobs, 0
        self.total, self.done_est = max(total_s, 1e-9), 0.0
        self.t0 = self.clock()
        if not self.enabled or n_jobs == 0:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        if not _is_terminal(stream):
            self.stream, self.lines = stream, True
            self.step = self.every_jobs or max(1, -(-n_jobs // 20))
            self.last_i, self.last_t = 0, self.t0
            self._line(f"{n_jobs} jobs to run, estimated {_fmt(total_s)}")
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = p = Progress(TextColumn("{task.fields[count]}"), BarColumn(bar_width=24),
                              TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                              TextColumn("{task.description}"),
                              console=Console(stderr=True), transient=True)
        p.start()
        self.task = p.add_task("starting", total=self.total, count=f"0/{n_jobs}",
                                    eta=_fmt(total_s))

    def job(self, description: str) -> None:
        """Show ``description`` as the job running now."""
        if self.p is not None and self.task is not None:
            self.p.update(self.task, description=description)

    def fail(self) -> None:
        """Count one failed job (a failed row stored)."""
        self.failures += 1

    def left_s(self) -> float:
        """Estimated seconds left, at the pace the estimate has been met so far."""
        elapsed = self.clock() - self.t0
        rate = elapsed / self.done_est if self.done_est > 0 else 1.0
        return max(0.0, self.total - self.done_est) * rate

    def advance(self, est_s: float, job: bool = True) -> None:
        """Count ``est_s`` estimated seconds as done (and one job, unless ``job`` is False)."""
        self.done_est += est_s
        self.i += int(job)
        if self.lines:
            now = self.clock()
            if self.i - self.last_i >= self.step or now - self.last_t >= self.every_s:
                self.last_i, self.last_t = self.i, now
                self._line(self._counts() + f", ~{_fmt(self.left_s())} left")
            return
        if self.p is None or self.task is None:
            return
        self.p.update(self.task, completed=min(self.done_est, self.total),
                      count=f"{min(self.i, self.n)}/{self.n}", eta=_fmt(self.left_s()))

    def _counts(self) -> str:
        i = min(self.i, self.n)
        return (f"{i}/{self.n} jobs ({100 * i // max(self.n, 1)}%), {self.failures} failed, "
                f"{_fmt(self.clock() - self.t0)} elapsed")

    def _line(self, text: str) -> None:
        stream = self.stream or sys.stderr  # start() chose it
        stream.write(f"prunebench: {text}\n")
        stream.flush()

    def stop(self) -> None:
        """Print the last line (plain lines) or take the bar down."""
        if self.lines:
            self.lines = False
            self._line(self._counts() + (", finished" if self.i >= self.n else ", stopped"))
        if self.p is not None:
            self.p.stop()
            self.p = None


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or bare file-like object
        return False


def _fmt(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"
