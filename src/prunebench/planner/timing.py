"""How the planner times its candidates: :func:`prunebench.measure.interleaved_ms` (every
candidate in interleaved rounds, slow ones raced out), with this package's rounds, and
whole models through the timing cache."""
from __future__ import annotations

from typing import Any, Callable

from ..measure.timer import RACE_MIN_ROUNDS, SAMPLE_S, interleaved_ms
from .cache import TimingCache, digest

__all__ = ["MODEL_ROUNDS", "LAYER_ROUNDS", "RACE_MIN_ROUNDS", "RACE_DROP", "SAMPLE_S",
           "interleaved_ms", "default_timer", "time_models"]

#: whole-model candidates are timed in this many interleaved rounds
MODEL_ROUNDS = 9
LAYER_ROUNDS = 7
#: after ``RACE_MIN_ROUNDS`` rounds, a candidate slower than ``RACE_DROP`` x the fastest is
#: timed no more (timing noise on a shared machine is a few percent; 1.5x is far outside it)
RACE_DROP = 1.5

#: ``timer(fns, rounds=, label=) -> {key: ms}``, what :func:`~prunebench.planner.plan` calls
Timing = Callable[..., dict[str, float]]


def default_timer(fns: dict[str, Callable[[], Any]], *, rounds: int,
                  label: str) -> dict[str, float]:
    """The planner's timer when none is injected: interleaved rounds with a race."""
    return interleaved_ms(fns, rounds=rounds, drop_above=RACE_DROP)


def time_models(model: Any, plans: dict[str, dict], build: Callable[..., Any], x: Any, tc: TimingCache,
                model_key: str, timer: Timing) -> dict[str, float]:
    """Whole-model milliseconds of each named plan; plans that are the same (the per-layer
    plan is often all dense, or all one format) are measured once under their first name."""
    keys = {k: digest(model_key, sorted(p.items())) for k, p in plans.items()}
    first: dict[str, str] = {}
    for k in plans:
        first.setdefault(keys[k], k)
    out: dict[str, float | None] = {k: tc.get(key) for key, k in first.items()}
    todo = {}
    for key, k in first.items():
        if out[k] is None:
            cm = build(model, plans[k] if plans[k] else "dense")
            todo[k] = (lambda cm=cm: cm(x))
    if todo:
        measured = timer(todo, rounds=MODEL_ROUNDS, label="model")
        tc.put({keys[k]: t for k, t in measured.items()})
        out.update(measured)
    done = {k: t for k, t in out.items() if t is not None}    # every plan is measured by now
    return {k: done[first[keys[k]]] for k in plans}
