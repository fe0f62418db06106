"""The latency stage: verify a compiled model against the dense fp32 reference, then time
it beside the unpruned model on dense PyTorch (and on the fastest dense engine)."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from ..jobs import Job
from ..rows import JobStatus, ResultRow
from .common import VerifyFailed

if TYPE_CHECKING:
    from ...measure import Measurement


def verify(fn: Callable[..., Any], reference: nn.Module, x: torch.Tensor,
           y: torch.Tensor | None, values: str, batch: int) -> dict[str, Any]:
    """:func:`prunebench.runtime.verify` of ``fn`` against the dense fp32 ``reference`` on
    ``x``, called in chunks of the timed ``batch`` (engines may take another code path per
    batch size). Returns the numbers; raises :class:`VerifyFailed` with them on failure."""
    from ...runtime.verify import verify as _verify

    v = _verify(fn, reference, x, y, values=values, batch_size=batch, raise_on_fail=False)
    numbers = dict(v.as_dict(), batch=batch)
    if not v.ok:
        raise VerifyFailed(f"{v.reason} ({v.n} inputs at batch {batch})", numbers)
    return numbers


def time_call(fn: Callable[..., Any], reference: Callable[..., Any], x: torch.Tensor,
              batch: int, threads: int, measure: dict[str, Any], label: str,
              fastest: Callable[..., Any] | None = None
              ) -> tuple[Measurement, Measurement, Measurement | None]:
    """(fn's, reference's, fastest's) :class:`~prunebench.measure.Measurement` of ``fn(x)``,
    ``reference(x)`` (the unpruned model on dense PyTorch) and ``fastest(x)`` (the unpruned
    model on the fastest dense engine, when it is not dense PyTorch; else None), timed side by
    side (:meth:`~prunebench.measure.Timer.run_among`), so that the speedups the report
    derives are ratios of one run. Blocks settle for :data:`SETTLE_S` when another runtime
    takes part (its thread pool spins after its calls). The noisy-IQR warning is kept as the
    measurement's ``noisy`` flag instead of printed mid-progress."""
    from ...measure import Timer

    torch.set_num_threads(threads)
    refs = [reference] if fastest is None else [reference, fastest]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.inference_mode():
            # one thread: no pool that spins (ONNX Runtime's intra-op pool has no workers)
            settle = 0.0 if fastest is None or threads <= 1 else SETTLE_S
            # settling is not measuring: it does not eat the measurement's time budget
            max_time = (max(measure["max_time"], measure["min_time"])
                        + settle * len(refs + [fn]) * measure["min_runs"])
            timer = Timer(lambda: fn(x), warmup=measure["warmup"], min_runs=measure["min_runs"],
                          min_time=measure["min_time"], max_time=max_time)
            m, ms = timer.run_among([_call(r, x) for r in refs], batch=batch,
                                    threads=threads, label=label, settle_s=settle)
    return m, ms[0], (ms[1] if fastest is not None else None)


def _call(fn: Callable[..., Any], x: torch.Tensor) -> Callable[[], Any]:
    return lambda: fn(x)


#: untimed seconds before each block when another runtime's thread pool takes part
SETTLE_S = 0.04


def _timing(engine: str | None, m: Measurement) -> dict[str, Any]:
    """The stored record of a side-by-side timing of the unpruned model on ``engine``."""
    lat = m.latency_ms()
    return {"engine": engine, "model": "unpruned", "p50_ms": lat["p50"], "iqr_ms": lat["iqr"],
            "runs": m.n, "noisy": m.noisy}


def beside(extra: dict[str, Any], ref: Measurement, fastest: Measurement | None = None,
           fastest_engine: str | None = None) -> dict[str, Any]:
    """``extra`` with the side-by-side reference timing ``ref`` (a Measurement: the unpruned
    model on dense PyTorch) and ``fastest_dense`` (the unpruned model on the fastest dense
    engine, ``fastest``; the reference itself when that is dense PyTorch) added."""
    extra["reference"] = _timing("torch-dense", ref)
    if fastest is not None:
        extra["fastest_dense"] = _timing(fastest_engine, fastest)
    elif fastest_engine == "torch-dense":
        extra["fastest_dense"] = dict(extra["reference"])
    return extra


def plan_summary(fn: Callable[..., Any], fmt: str) -> dict[str, Any] | None:
    """How many weight matrices a compiled model runs in ``fmt`` and how many dense (with the
    first reason), from the ``plan`` a runtime-built engine exposes; None otherwise."""
    plan = getattr(fn, "plan", None)
    auto = getattr(fn, "auto_plan", None)
    if isinstance(auto, dict):  # format auto: matrices the planner put on a sparse format
        rows = [r for r in (plan or {}).values() if isinstance(r, dict)]
        return {"in_format": sum(r.get("format") != "dense" for r in rows), "fell_back": 0,
                "reason": None, "auto": auto}
    if not isinstance(plan, dict):
        return None
    rows = [r for r in plan.values() if isinstance(r, dict)]
    in_fmt = [r for r in rows if r.get("format") == fmt]
    dense = [r for r in rows if r.get("format") != fmt and r.get("requested") == fmt]
    return {"in_format": len(in_fmt), "fell_back": len(dense),
            "reason": dense[0].get("reason") if dense else None}


def latency_row(job: Job, m: Measurement, numbers: dict[str, Any],
                extra: dict[str, Any]) -> ResultRow:
    """The ok row of a timed job: ``m``'s samples and statistics, the verification
    ``numbers`` and ``extra``."""
    lat = m.latency_ms()
    return ResultRow.of(
        job, JobStatus.OK, samples=list(m.samples), p50_ms=lat["p50"], p90_ms=lat["p90"],
        p99_ms=lat["p99"], mean_ms=lat["mean"], iqr_ms=lat["iqr"], throughput=m.throughput,
        extra={"method_label": job.method_label, "verify": numbers, "noisy": m.noisy,
               "runs": m.n, **extra})
