"""The planner's engine choice: the per-layer plan against whole-graph engines, side by side.

:func:`prunebench.planner.plan` chooses a format per layer on one engine (``native``: sparse
layers inside eager PyTorch). With ``hosts`` it then times that planned model beside the pruned
model on each host engine in :data:`HOSTS` (ONNX Runtime and OpenVINO dense; OpenVINO with its
csr layers as custom operations inside the compiled graph), every candidate verified first and
timed beside the planned model (:meth:`prunebench.measure.Timer.run_beside`, settled blocks:
another runtime's threads spin after its calls), and keeps the fastest. So a plan
is never slower than the fastest dense engine it was compared with: where no sparse layer
pays, the answer is "run it dense on onnxruntime" (or whichever won), and
``Plan.host`` says so.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch
from torch import nn

from .errors import BadInputError, PrunebenchError

if TYPE_CHECKING:
    from .planner.result import Plan

#: (engine, format) candidates ``hosts=True`` compares with the per-layer plan
HOSTS: tuple[tuple[str, str], ...] = (("onnxruntime", "dense"), ("openvino", "dense"),
                                      ("openvino", "csr"))
#: rounds of an injected timer (tests)
ROUNDS = 7
#: each candidate is timed beside the planned model: blocks of BLOCK_S seconds, each after
#: SETTLE_S seconds untimed (the other runtime's spinning threads; see Timer.run_beside)
BLOCK_S, SETTLE_S, MIN_TIME = 0.05, 0.04, 0.6


def parse_hosts(hosts: Any) -> tuple[tuple[str, str], ...]:
    """``True`` -> :data:`HOSTS`; ``False``/``None``/``()`` -> none; else ("engine/format", ...)."""
    from .engines import ENGINES

    if hosts is True:
        return HOSTS
    if hosts in (False, None, ()):
        return ()
    if isinstance(hosts, str):
        hosts = [h for h in hosts.split(",") if h]
    out = []
    for h in hosts:
        engine, _, fmt = (h if isinstance(h, str) else "/".join(h)).partition("/")
        fmt = fmt or "dense"
        if engine not in ENGINES.names() or not ENGINES.get(engine).supports(fmt):
            raise BadInputError(f"hosts: {h!r} should be ENGINE[/FORMAT] of an engine that runs "
                                f"that format; e.g. {', '.join('/'.join(c) for c in HOSTS)}")
        out.append((engine, fmt))
    return tuple(out)


def choose_host(plan: Plan, model: nn.Module, x: torch.Tensor,
                hosts: Iterable[tuple[str, str]], *,
                timer: Callable[..., dict[str, float]] | None = None,
                progress: Callable[[str], None] | None = None) -> None:
    """Time ``plan``'s model beside ``model`` on each host; set ``plan.host`` to the winner
    ({engine, format, times_ms, unavailable}). Candidates that cannot compile or that fail
    verification are listed in ``unavailable`` with the reason, never chosen."""
    from . import engines
    from .runtime.verify import verify

    runs: dict[str, Any] = {"planned": plan.compile(model)}
    unavailable: dict[str, str] = {}
    for engine, fmt in hosts:
        key = f"{engine}/{fmt}"
        try:
            run = engines.compile(model, engine, fmt, values="fp32", threads=plan.threads,
                                  fallback="dense", example_input=x)
            verify(run, model, x)
        except PrunebenchError as e:
            unavailable[key] = str(e)
            continue
        runs[key] = run
    if progress:
        progress(f"engines: timing {', '.join(runs)}")
    with torch.inference_mode():
        fns = {k: _bound(r, x) for k, r in runs.items()}
        times = (timer(fns, rounds=ROUNDS, label="engines") if timer
                 else _beside_planned(fns))
    best = min(times, key=lambda k: times[k])
    engine, _, fmt = best.partition("/")
    plan.host = {"engine": plan.engine if best == "planned" else engine,
                 "format": "planned" if best == "planned" else fmt,
                 "times_ms": {k: round(v, 4) for k, v in times.items()},
                 "unavailable": unavailable}


def _bound(run: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Callable[[], Any]:
    return lambda: run(x)


def _beside_planned(fns: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Milliseconds of each candidate as its side-by-side ratio to the planned model, scaled
    by the planned model's median over all the runs."""
    from .measure import Timer

    planned, ratios = [], {"planned": 1.0}
    for key, fn in fns.items():
        if key == "planned":
            continue
        mine, ref = Timer(fn, warmup=3, min_runs=10, min_time=MIN_TIME).run_beside(
            fns["planned"], block_s=BLOCK_S, settle_s=SETTLE_S)
        ratios[key] = mine.median / ref.median
        planned.append(ref.median)
    if not planned:
        return {"planned": 0.0}
    base = sorted(planned)[len(planned) // 2] * 1e3
    return {k: r * base for k, r in ratios.items()}
