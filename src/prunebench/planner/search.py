"""The planner's search: capture each layer's input, time every candidate format of every
prunable layer, then whole models side by side, and choose per objective (see
:mod:`prunebench.planner`)."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..dtypes import VALUE_ENCODINGS
from ..errors import BadInputError
from ..formats import FORMATS
from ..kernels import sources_digest
from .cache import TimingCache, digest
from .result import Plan
from .rules import TIE, dense_bytes, fastest, left_dense, op_bytes, plan_bytes
from .timing import LAYER_ROUNDS, Timing, default_timer, time_models

OBJECTIVES = ("latency", "size")
#: engines whose compile takes a per-layer plan (built on :mod:`prunebench.runtime`)
PLAN_ENGINES = ("native", "torch-sparse", "scipy")


class _One(nn.Module):
    """One layer as a model, so that the engines compile it like any model."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, *args):
        return self.layer(*args)


def _capture(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, tuple]:
    """The positional inputs each named module receives (first call) in ``model(x)``."""
    got: dict[str, tuple] = {}
    hooks = []
    for n in names:
        def hook(_m, args, n=n):
            if n not in got:
                got[n] = tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a
                               for a in args)
        hooks.append(model.get_submodule(n).register_forward_pre_hook(hook))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return got


def check_args(objective: str, budget_ms: Any, batch: Any, threads: Any, engine: str,
               values: str) -> None:
    """The settings of :func:`plan` (also checked by ``prunebench plan`` before a model is
    pruned or loaded); raises :class:`~prunebench.errors.BadInputError` naming the option."""
    from ..runtime.compile import check_threads

    if objective not in OBJECTIVES:
        raise BadInputError(f"--objective: got {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    if budget_ms is not None:
        if isinstance(budget_ms, bool) or not isinstance(budget_ms, (int, float)) \
                or not math.isfinite(budget_ms) or budget_ms <= 0:
            raise BadInputError(f"--budget-ms: got {budget_ms!r}; allowed: a number of "
                                "milliseconds > 0")
        if objective != "size":
            raise BadInputError("--budget-ms: only with --objective size (the latency "
                                "objective takes the fastest plan)")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) \
            or not 1 <= batch <= 65536:
        raise BadInputError(f"--batch: got {batch!r}; allowed: an integer in [1, 65536]")
    check_threads(threads)
    if engine not in PLAN_ENGINES:
        raise BadInputError(f"--engine: got {engine!r}; the planner runs on engines that take "
                            f"a per-layer plan: {', '.join(PLAN_ENGINES)}")
    if values not in VALUE_ENCODINGS:
        raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_ENCODINGS)}")


def plan(model: nn.Module, example_input: torch.Tensor, *, objective: str = "latency",
         budget_ms: float | None = None, batch: int | None = None, threads: int = 1,
         engine: str = "native", values: str = "fp32", formats: tuple[str, ...] | None = None,
         cache: bool = True, progress: Callable[[str], None] | None = None,
         timer: Timing | None = None, verify_labels: torch.Tensor | None = None,
         hosts: Any = False, **format_opts: Any) -> Plan:
    """Choose a storage format for every prunable layer of ``model`` by measuring.

    Parameters
    ----------
    model : a pruned torch model (never changed).
    example_input : a model input of the batch to plan for (its first dimension is the batch
        unless ``batch`` is given, then its first ``batch`` rows are used).
    objective : ``"latency"`` (fastest) or ``"size"`` (smallest within ``budget_ms``).
    budget_ms : whole-model latency budget for ``size``; default the dense model's latency.
    threads : threads for PyTorch and the sparse kernels.
    engine : ``native`` (default), ``torch-sparse`` or ``scipy``.
    values : value encoding of the sparse layers (``fp32``, ``fp16``, ``int8``).
    formats : candidate formats (default: every format the engine runs, except those built
        for batches larger than ``batch``, ``Format.min_batch``); dense always is.
    cache : reuse timings measured before on this machine.
    timer : ``timer(fns, rounds=, label=) -> {key: ms}`` (default: interleaved rounds of
        :func:`~prunebench.measure.interleaved_ms`; tests inject timings through it).
        ``label`` is the layer name, or ``"model"``.
    verify_labels : labels of ``example_input`` (the verification then reports accuracy).
    hosts : ``True`` (or a list of ``"engine/format"``) also times the planned model beside the
        pruned model on whole-graph engines (ONNX Runtime, OpenVINO dense and with csr custom
        operations) and keeps the fastest in ``Plan.host`` (:mod:`prunebench.hosts`); the
        default keeps the per-layer plan on ``engine``.
    **format_opts : ``block``, ``n``, ``m``, ``slice_height``, as for :func:`compile`.

    The chosen model is verified against ``model`` on all of ``example_input`` (raises
    :class:`~prunebench.errors.VerificationError` when it computes something else).

    Examples
    --------
    >>> net, data = prunebench.zoo.load("digits-lenet300")             # doctest: +SKIP
    >>> pruned = prunebench.prune(net, "magnitude", 0.9).model
    >>> p = plan(pruned, data.x_test[:1])
    >>> fast = prunebench.compile(pruned, p.formats or "dense")
    """
    from ..hosts import choose_host, parse_hosts
    from ..runtime.compile import encoding_memo

    candidates = parse_hosts(hosts)
    with encoding_memo():  # each layer is encoded once per format, not once per compile
        result = _plan(model, example_input, objective=objective, budget_ms=budget_ms,
                       batch=batch, threads=threads, engine=engine, values=values,
                       formats=formats, cache=cache, progress=progress, timer=timer,
                       verify_labels=verify_labels, **format_opts)
    if candidates:
        x = example_input if batch is None else example_input[:batch]
        choose_host(result, model, x, candidates, timer=timer, progress=progress)
    return result


def _plan(model, example_input, *, objective, budget_ms, batch, threads, engine, values,
          formats, cache, progress, timer, verify_labels, **format_opts) -> Plan:
    from .. import engines
    from ..measure import fingerprint
    from ..pruning.targets import prunable_layers
    from ..runtime.compile import compile as runtime_compile
    from ..runtime.compile import plan_matrices

    t_start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise BadInputError(f"model should be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() == 0 \
            or len(example_input) == 0:
        raise BadInputError("example_input: a tensor with a batch dimension is needed")
    batch = len(example_input) if batch is None else batch
    check_args(objective, budget_ms, batch, threads, engine, values)
    if len(example_input) < batch:
        raise BadInputError(f"example_input holds {len(example_input)} rows, fewer than "
                            f"--batch {batch}")
    x = example_input[:batch]
    eng = engines.ENGINES.get(engine)
    candidates = tuple(formats) if formats is not None else tuple(
        f for f in eng.formats if f not in FORMATS or FORMATS.get(f).min_batch <= batch)
    for f in candidates:
        if not eng.supports(f):
            raise BadInputError(f"formats: {f!r} is not a sparse format engine {engine!r} runs; "
                                f"it runs: {', '.join(x for x in eng.formats if x != 'dense')}")
    say = progress or (lambda _msg: None)
    timer = timer or default_timer
    model = model.eval()
    matrices = plan_matrices(model)
    modules = [m for m in prunable_layers(model)]
    fp = fingerprint()
    tc = TimingCache(fp["id"], enabled=cache)
    opts = {k: v for k, v in format_opts.items() if v is not None}
    settings = {"engine": engine, "values": values, "threads": threads, "batch": batch,
                "opts": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()},
                "torch": torch.__version__, "code": sources_digest()}
    torch.set_num_threads(threads)

    def build(net: nn.Module, fmt: Any):
        if fmt == "dense" or fmt == {}:  # PyTorch behind the same wrapper as the sparse ones
            return runtime_compile(net, "dense", threads=threads)
        return engines.compile(net, engine, fmt, values=values, threads=threads,
                               keep_smaller=False, fallback="error", **opts)

    inputs = _capture(model, modules, x)
    layers: list[dict] = []
    fastest_of: dict[str, str] = {}
    for mname in modules:
        row = _time_layer(model, mname, inputs.get(mname), matrices, candidates, build,
                          settings, tc, timer, values, say)
        layers.append(row)
        # a layer left dense untimed has its reason already
        fastest_of[mname] = ("dense" if row["reason"]
                             else fastest(row["times_ms"], row["bytes"]))

    per_layer = {m: f for m, f in fastest_of.items() if f != "dense"}
    single = [f for f in candidates
              if any(f in lay["times_ms"] for lay in layers)]

    # whole models, side by side
    def model_plan(f: str) -> dict[str, str]:
        return {lay["name"]: f for lay in layers if f in lay["times_ms"]}

    whole: dict[str, dict[str, str]] = {"dense": {}}
    for f in single:
        whole[f] = model_plan(f)
    whole["per-layer"] = per_layer
    say(f"whole model: dense, per-layer plan and {len(single)} single-format models")
    model_key = digest(settings, tuple(x.shape), *[t for t in model.state_dict().values()])
    model_ms = time_models(model, whole, build, x, tc, model_key, timer)

    bytes_of = {name: plan_bytes(layers, p) for name, p in whole.items()}
    if objective == "latency":
        chosen, final, planned_ms = _plan_latency(layers, whole, model_ms, single, fastest_of)
    else:
        budget = budget_ms if budget_ms is not None else model_ms["dense"]
        chosen, final, planned_ms = _plan_size(model, layers, whole, model_ms, bytes_of,
                                               budget, build, x, tc, model_key, say, timer)
        budget_ms = budget
    model_ms["planned"] = planned_ms
    bytes_of["planned"] = plan_bytes(layers, final)
    matrix_formats = {n: final[m] for n, (m, _, _, _) in matrices.items() if m in final}
    tc.save()
    # the chosen model must compute what the pruned model computes, on every example input
    from ..runtime.verify import verify

    say("verifying the planned model against the pruned model")
    checked = verify(build(model, final or "dense"), model, example_input, verify_labels,
                     values=values)
    return Plan(objective=objective, engine=engine, values=values, batch=batch,
                threads=threads, budget_ms=budget_ms, formats=dict(final),
                matrix_formats=matrix_formats, layers=layers, model_ms=model_ms,
                model_bytes=bytes_of, chosen_from=chosen, per_layer_formats=per_layer,
                cache_hits=tc.hits, measured_s=time.perf_counter() - t_start,
                format_options=opts, verify=checked.as_dict())


def _time_layer(model: nn.Module, mname: str, args: tuple | None, matrices: dict,
                candidates: tuple[str, ...], build: Callable, settings: dict, tc: TimingCache,
                timer: Timing, values: str, say: Callable[[str], None]) -> dict:
    """One prunable layer's row of :attr:`Plan.layers`: its bytes and measured time in dense
    and every candidate format (from the cache where it holds them), or the reason it stays
    dense untimed (``reason`` then set, ``times_ms`` empty)."""
    module = model.get_submodule(mname)
    weights = [n for n, (mod, _, _, _) in matrices.items() if mod == mname]
    params = [p for _, p in module.named_parameters()]
    W = [p for n, p in module.named_parameters() if "weight" in n]
    zeros = sum(int((w == 0).sum()) for w in W)
    total = sum(w.numel() for w in W)
    row: dict[str, Any] = {"name": mname, "kind": type(module).__name__,
           "shape": list(W[0].shape) if W else [], "matrices": weights,
           "sparsity": zeros / total if total else 0.0,
           "times_ms": {}, "bytes": {}, "unavailable": {}, "format": "dense",
           "reason": ""}
    problem = left_dense(module, zeros, total, args, values)
    if problem or args is None:        # a layer the example never reached has its reason
        row["reason"] = problem
        row["bytes"]["dense"] = dense_bytes(module, values)
        return row
    say(f"layer {mname}: timing dense and {len(candidates)} formats")
    base = digest(settings, type(module).__name__, repr(module),
                  [tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args],
                  *params)
    built = {}
    for f in ("dense",) + candidates:
        try:
            cm = build(_One(module), f if f == "dense" else {"layer": f})
        except BadInputError as e:
            row["unavailable"][f] = str(e).removeprefix("layer layer: ").replace(
                "layer layer.", "")
            continue
        nbytes = op_bytes(cm) if f != "dense" else dense_bytes(module, values)
        row["bytes"][f] = nbytes
        if f != "dense" and nbytes > row["bytes"]["dense"]:
            # it moves more bytes than dense: it cannot win where bandwidth bounds the
            # time, and it cannot win on size (e.g. 4x4 blocks over scattered zeros)
            row["unavailable"][f] = (f"{nbytes} B, larger than dense "
                                     f"({row['bytes']['dense']} B): not timed")
            continue
        built[f] = cm
    keys = {f: digest(base, f) for f in built}
    times = {f: tc.get(keys[f]) for f in built}
    todo = {f: (lambda cm=cm: cm(*args)) for f, cm in built.items() if times[f] is None}
    if todo:
        measured = timer(todo, rounds=LAYER_ROUNDS, label=mname)
        tc.put({keys[f]: t for f, t in measured.items()})
        times.update(measured)
    row["times_ms"] = {f: times[f] for f in built}
    return row


def _plan_latency(layers: list[dict], whole: dict[str, dict[str, str]],
                  model_ms: dict[str, float], single: list[str],
                  fastest_of: dict[str, str]) -> tuple[str, dict[str, str], float]:
    """The fastest whole model: the per-layer plan unless a whole model measured faster by
    more than noise (``TIE``). Sets each timed layer's format and reason; returns (chosen
    plan's name, its {layer: format}, its milliseconds)."""
    per_layer = whole["per-layer"]
    options = {"per-layer": model_ms["per-layer"], "dense": model_ms["dense"]}
    options.update({f: model_ms[f] for f in single})
    chosen = "per-layer"
    best = min(options, key=options.__getitem__)
    if options[best] < (1 - TIE) * options["per-layer"] and whole[best] != per_layer:
        chosen = best
    final = whole[chosen]
    for lay in layers:
        if lay["reason"]:
            continue
        f = final.get(lay["name"], "dense")
        lay["format"] = f
        t = lay["times_ms"]
        lay["reason"] = (f"fastest of {len(t)} candidates ({t[f]:.3g} ms)"
                         if fastest_of[lay["name"]] == f else
                         f"whole-model choice '{chosen}' (layer's fastest: "
                         f"{fastest_of[lay['name']]})")
    return chosen, final, options[chosen]


def _plan_size(model, layers, whole, model_ms, bytes_of, budget, build, x, tc, model_key,
               say, timer) -> tuple[str, dict[str, str], float]:
    """Smallest plan within ``budget`` ms: greedy from the fastest per-layer plan, checked by
    measurement; single-format models within the budget compete."""
    cur = dict(whole["per-layer"])
    est = model_ms["per-layer"]
    moves = []   # (ms added per byte saved, layer name, format, layer)
    for lay in layers:
        t, b = lay["times_ms"], lay["bytes"]
        if not t:
            continue
        f0 = cur.get(lay["name"], "dense")
        for f in t:
            db = b[f0] - b[f]
            if db <= 0:
                continue
            moves.append(((t[f] - t[f0]) / db, lay["name"], f, lay))
    moves.sort(key=lambda mv: mv[:3])
    applied = []
    for _, name, f, lay in moves:
        now = cur.get(name, "dense")
        if lay["bytes"][f] >= lay["bytes"][now]:
            continue
        d = lay["times_ms"][f] - lay["times_ms"][now]
        if est + d <= budget:
            applied.append((name, now))
            cur[name] = f
            est += d
    cur = {k: v for k, v in cur.items() if v != "dense"}
    # measure; undo the latest changes until within budget
    tries = 0
    measured = time_models(model, {"size": cur}, build, x, tc, model_key, timer)["size"]
    while measured > budget and applied and tries < 6:
        name, prev = applied.pop()
        if prev == "dense":
            cur.pop(name, None)
        else:
            cur[name] = prev
        measured = time_models(model, {"size": cur}, build, x, tc, model_key, timer)["size"]
        tries += 1
        say(f"size plan over budget; undid {name} ({measured:.3g} ms)")
    candidates = {"per-layer-size": (cur, measured)}
    for k, p in whole.items():
        candidates[k] = (p, model_ms[k])
    within = {k: v for k, v in candidates.items() if v[1] <= budget}
    if not within:  # nothing meets the budget: the fastest there is, said by the caller
        k = min(candidates, key=lambda k: candidates[k][1])
    else:
        k = min(within, key=lambda k: (plan_bytes(layers, within[k][0]), within[k][1]))
    final, ms = candidates[k]
    for lay in layers:
        if lay["reason"]:
            continue
        f = final.get(lay["name"], "dense")
        lay["format"] = f
        lay["reason"] = (f"smallest within the budget {budget:.3g} ms "
                         f"({lay['bytes'][f]} B, {lay['times_ms'][f]:.3g} ms)"
                         if k == "per-layer-size" else f"whole-model choice '{k}'")
    model_ms["per-layer-size"] = measured
    bytes_of["per-layer-size"] = plan_bytes(layers, cur)
    return k, final, ms
