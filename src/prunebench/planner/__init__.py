"""Per-layer format planner: measure, on this machine, which storage format each pruned layer
should run in.

No single format wins everywhere: a small layer whose weights sit in cache runs fastest dense,
a large bandwidth-bound layer gains from a sparse format, and the crossover moves with batch,
sparsity pattern and machine. :func:`plan` therefore times every candidate format of every
prunable layer *on that layer's real input* (captured from one forward pass at the requested
batch), picks per layer, then times the whole planned model side by side with the dense model
and with every single-format model, in interleaved rounds so that machine noise hits all of
them alike.

Objectives
----------
``latency``
    The fastest format per layer (dense is always a candidate). The per-layer choices are
    measured as a whole; should the whole planned model lose to the dense model or to a
    single-format model (per-layer times do not add up exactly: caches are shared), the
    faster whole model is chosen and ``chosen_from`` says so.
``size``
    The smallest model whose whole-model latency stays within ``budget_ms`` (default: the
    dense model's measured latency). Starting from the fastest plan, layers move to smaller
    formats in order of bytes saved per millisecond added while the estimate (measured
    planned time plus the per-layer differences) stays within the budget; the result is
    measured, and changes are undone, worst first, until the measurement is within budget.
    Every single-format model within the budget is a candidate too, so the answer is never
    larger than one of them.

Timings are cached per machine fingerprint in ``$PRUNEBENCH_CACHE/planner/<id>.json``, keyed
by a digest of the layer's weights, its input shape, every setting, the torch version and the
kernel and runtime sources, so planning the same model again measures nothing
(``cache=False`` measures again) while timings of other code are never reused.

The package
-----------
:mod:`~prunebench.planner.search` (:func:`plan`: capture, time, choose),
:mod:`~prunebench.planner.rules` (per-layer rules: left dense, bytes, the fastest),
:mod:`~prunebench.planner.timing` (rounds, whole-model timing; the loop is
:func:`prunebench.measure.interleaved_ms`), :mod:`~prunebench.planner.cache` (the timing
cache), :mod:`~prunebench.planner.result` (:class:`Plan`) and
:mod:`~prunebench.planner.command` (``prunebench plan``).
"""
from .cache import TimingCache
from .result import Plan
from .rules import DENSE_MARGIN, MAX_BLOCK, TIE
from .search import OBJECTIVES, PLAN_ENGINES, check_args, plan
from .timing import (LAYER_ROUNDS, MODEL_ROUNDS, RACE_DROP, RACE_MIN_ROUNDS, SAMPLE_S,
                     interleaved_ms)

__all__ = ["plan", "Plan", "check_args", "TimingCache", "interleaved_ms", "OBJECTIVES",
           "PLAN_ENGINES", "MODEL_ROUNDS", "LAYER_ROUNDS", "RACE_MIN_ROUNDS", "RACE_DROP",
           "SAMPLE_S", "DENSE_MARGIN", "TIE", "MAX_BLOCK"]
