"""Latency measurement as plain data (after torch.utils.benchmark): :class:`Timer` only
measures, :class:`Measurement` keeps the raw samples and derives the statistics.

The timing loops, all here:

* :meth:`Timer.run`: one callable, until ``min_runs`` calls and ``min_time`` seconds;
* :meth:`Timer.run_beside` / :meth:`Timer.run_among`: several callables side by side, in
  alternating blocks of a few milliseconds (the speedups of ``bench`` and studies);
* :func:`interleaved_ms`: many candidates in a fixed number of interleaved rounds, each sample
  a calibrated repeat of sub-millisecond calls, slow candidates raced out (the planner's).
"""
from __future__ import annotations

import math
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import BadInputError

NOISY_IQR_FRACTION = 0.10
#: how long :meth:`Timer.run_beside` times one callable before switching to the other
BLOCK_S = 0.005


@dataclass(frozen=True)
class Measurement:
    """Raw per-call times in seconds for ``batch`` inputs per call; statistics are derived."""

    samples: tuple[float, ...]
    batch: int = 1
    threads: int | None = None
    label: str = ""
    warmup: int = 0

    def _q(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.samples), q))

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return self._q(50)

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    @property
    def p90(self) -> float:
        return self._q(90)

    @property
    def p99(self) -> float:
        return self._q(99)

    @property
    def iqr(self) -> float:
        return self._q(75) - self._q(25)

    @property
    def throughput(self) -> float:
        """Samples (inputs) per second at the median latency."""
        return self.batch / self.median if self.median > 0 else math.inf

    @property
    def noisy(self) -> bool:
        """True when IQR / median exceeds 10%: the figure should not be trusted alone."""
        return self.median > 0 and self.iqr / self.median > NOISY_IQR_FRACTION

    def latency_ms(self) -> dict[str, float]:
        return {"p50": self.median * 1e3, "p90": self.p90 * 1e3, "p99": self.p99 * 1e3,
                "mean": self.mean * 1e3, "iqr": self.iqr * 1e3}

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "latency_ms": self.latency_ms(), "throughput": self.throughput,
                "noisy": self.noisy}


def _check(name: str, value: Any, minimum: float, kind: type = float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or value < minimum:  # NaN compares False with everything: refused by isfinite
        what = "an integer" if kind is int else "a finite number"
        raise BadInputError(f"{name}: got {value!r}, expected {what} >= {minimum}")


#: seconds of timed calls a caller may ask for (``bench --min-time``, a spec's ``measure``):
#: more is a typo, not a measurement plan
MAX_TIMED_S = 3600.0


def check_timing(warmup: Any, min_runs: Any, min_time: Any) -> None:
    """The stopping rules a caller passes to :class:`Timer`, checked before any work (the CLI
    calls it before a model is loaded): ``warmup`` >= 0 and ``min_runs`` >= 1 integers,
    ``min_time`` a finite number of seconds >= 0."""
    _check("warmup", warmup, 0, int)
    _check("min_runs", min_runs, 1, int)
    _check("min_time", min_time, 0)


@dataclass
class Timer:
    """Call ``fn`` ``warmup`` times, then repeatedly until both ``min_runs`` calls and
    ``min_time`` seconds are reached, stopping at ``max_runs`` calls or ``max_time`` seconds.

    ``clock`` is injectable (tests drive the stopping rules with a fake clock).
    ``between`` runs before each timed call, outside the timed region (e.g. a cache flush)."""

    fn: Callable[[], object]
    warmup: int = 3
    min_runs: int = 10
    min_time: float = 0.5
    max_runs: int = 10_000
    max_time: float = 30.0
    clock: Callable[[], float] = field(default=time.perf_counter)
    between: Callable[[], object] | None = None

    def __post_init__(self) -> None:
        check_timing(self.warmup, self.min_runs, self.min_time)
        _check("max_runs", self.max_runs, self.min_runs, int)
        _check("max_time", self.max_time, self.min_time)

    def run(self, batch: int = 1, threads: int | None = None, label: str = "") -> Measurement:
        for _ in range(self.warmup):
            self.fn()
        samples: list[float] = []
        start = self.clock()
        while True:
            samples.append(self._time_one(self.fn)[0])
            elapsed = self.clock() - start
            enough = len(samples) >= self.min_runs and elapsed >= self.min_time
            if enough or len(samples) >= self.max_runs or elapsed >= self.max_time:
                break
        return self._result(samples, batch, threads, label)

    def run_beside(self, reference: Callable[[], object], batch: int = 1,
                   threads: int | None = None, label: str = "", block_s: float = BLOCK_S,
                   settle_s: float = 0.0) -> tuple["Measurement", "Measurement"]:
        """Time ``fn`` and ``reference`` side by side, in alternating blocks of about
        ``block_s`` seconds (fn's calls, then reference's, then fn's, ...): a slow or fast
        spell of a shared machine (they last from milliseconds to seconds) hits both alike, so
        the ratio of the medians stays true when absolute times drift. The first call of a
        block that holds more than one runs after the other callable has had the caches, so it
        is not kept: a block measures warm calls as :meth:`run` does. Warm-up and ``between``
        are those of :meth:`run`; it stops when both have ``min_runs`` samples and
        ``min_time`` has passed, or at ``max_runs`` of fn's samples or ``max_time``.

        ``settle_s``: each block first runs its callable that long untimed. Thread pools spin
        after their last call (ONNX Runtime's for about 35 ms here, doubling the time of the
        OpenVINO calls that followed), so callables of different runtimes need it.
        Returns (fn's, reference's) measurements."""
        mine, (theirs,) = self.run_among([reference], batch=batch, threads=threads,
                                         label=label, block_s=block_s, settle_s=settle_s)
        return mine, theirs

    def run_among(self, references: Sequence[Callable[[], object]], batch: int = 1,
                  threads: int | None = None, label: str = "", block_s: float = BLOCK_S,
                  settle_s: float = 0.0) -> tuple["Measurement", list["Measurement"]]:
        """:meth:`run_beside` with several references: blocks of fn, then each reference in
        turn, round after round. Returns (fn's measurement, [each reference's])."""
        _check("block_s", block_s, 0)
        _check("settle_s", settle_s, 0)
        calls = [self.fn, *references]
        for _ in range(self.warmup):
            for call in calls:
                call()
        samples: list[list[float]] = [[] for _ in calls]
        start = self.clock()
        while True:
            for call, kept in zip(calls, samples):
                block: list[float] = []
                settle_end = self.clock() + settle_s
                while settle_s and self.clock() < settle_end:
                    call()
                block_start = self.clock()
                while True:
                    took, t1 = self._time_one(call)
                    block.append(took)
                    if t1 - block_start >= block_s:
                        break
                kept.extend(block[1:] if len(block) > 1 else block)
            elapsed = self.clock() - start
            enough = all(len(k) >= self.min_runs for k in samples) and elapsed >= self.min_time
            if enough or len(samples[0]) >= self.max_runs or elapsed >= self.max_time:
                break
        names = ([" (reference)"] if len(references) == 1
                 else [f" (reference {i})" for i in range(len(references))])
        refs = [self._result(k, batch, threads, f"{label}{n}" if label else "")
                for n, k in zip(names, samples[1:])]
        return self._result(samples[0], batch, threads, label), refs

    def _time_one(self, call: Callable[[], object]) -> tuple[float, float]:
        """(seconds ``call`` took, the clock after it); ``between`` runs first, untimed."""
        if self.between is not None:
            self.between()
        t0 = self.clock()
        call()
        t1 = self.clock()
        return t1 - t0, t1

    def _result(self, samples: list[float], batch: int, threads: int | None,
                label: str) -> "Measurement":
        m = Measurement(tuple(samples), batch=batch, threads=threads, label=label,
                        warmup=self.warmup)
        if m.noisy:
            warnings.warn(f"{label or 'measurement'}: IQR is {m.iqr / m.median:.0%} of the "
                          f"median over {m.n} runs; the machine may be busy", stacklevel=3)
        return m


#: :func:`interleaved_ms`: one timed sample repeats the call until it lasts at least this long
SAMPLE_S = 0.002
#: :func:`interleaved_ms` races out a slow candidate only after this many rounds
RACE_MIN_ROUNDS = 3


def interleaved_ms(fns: dict[str, Callable[[], Any]], rounds: int = 7,
                   sample_s: float = SAMPLE_S,
                   clock: Callable[[], float] = time.perf_counter,
                   drop_above: float | None = None) -> dict[str, float]:
    """Median milliseconds per call of each callable, timed in ``rounds`` interleaved rounds
    (a, b, c, a, b, c, ...) so that a busy moment of the machine hits every candidate alike.

    Each callable is called once first (warm-up: numba compilation, first-touch) and once to
    calibrate how many calls make one sample of at least ``sample_s`` seconds.

    With ``drop_above`` (a race), after ``RACE_MIN_ROUNDS`` rounds a callable whose median is
    more than ``drop_above`` times the fastest median is timed no more: its median so far is
    returned (it cannot win, and slow candidates, such as 4x4 blocks over scattered zeros at a
    batch of 8, took most of a plan's timing)."""
    reps = {}
    for k, fn in fns.items():
        fn()
        t0 = clock()
        fn()
        one = max(clock() - t0, 1e-7)
        reps[k] = max(1, min(1000, math.ceil(sample_s / one)))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    racing = dict(fns)
    for r in range(rounds):
        for k, fn in racing.items():
            t0 = clock()
            for _ in range(reps[k]):
                fn()
            samples[k].append((clock() - t0) / reps[k] * 1e3)
        if drop_above is not None and r + 1 >= RACE_MIN_ROUNDS and len(racing) > 1:
            med = {k: statistics.median(samples[k]) for k in racing}
            best = min(med.values())
            racing = {k: fn for k, fn in racing.items() if med[k] <= drop_above * best}
    return {k: statistics.median(v) for k, v in samples.items()}
