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
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .errors import BadInputError
from .kernels import sources_digest

OBJECTIVES = ("latency", "size")
#: engines whose compile takes a per-layer plan (built on :mod:`prunebench.runtime`)
PLAN_ENGINES = ("native", "torch-sparse", "scipy")
#: whole-model candidates are timed in this many interleaved rounds
MODEL_ROUNDS = 9
LAYER_ROUNDS = 7
#: after this many rounds, a candidate slower than ``RACE_DROP`` x the fastest is timed no more
#: (timing noise on a shared machine is a few percent; 1.5x is far outside it)
RACE_MIN_ROUNDS = 3
RACE_DROP = 1.5
#: one timed sample repeats the call until it lasts at least this long (seconds)
SAMPLE_S = 0.002
#: a sparse format must beat dense by this fraction to replace it in a layer (timing noise
#: on a shared machine is a few percent; a wrong sparse choice can cost far more)
DENSE_MARGIN = 0.03
#: candidates within this fraction of the fastest count as equally fast (the smaller wins)
TIE = 0.02


# ---------------------------------------------------------------- timing


def interleaved_ms(fns: dict[str, Callable[[], Any]], rounds: int = LAYER_ROUNDS,
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


class TimingCache:
    """{key: milliseconds} of one machine, as JSON under the zoo cache folder; written
    atomically (a temporary file renamed over the old one)."""

    def __init__(self, machine_id: str, enabled: bool = True, root: Path | None = None):
        from .zoo.cache import cache_dir

        self.enabled = enabled
        self.path = (root or cache_dir() / "planner") / f"{machine_id}.json"
        self.data: dict[str, float] = {}
        self.hits = 0
        if enabled and self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                if isinstance(loaded, dict):
                    self.data = {k: float(v) for k, v in loaded.items()
                                 if isinstance(v, (int, float)) and math.isfinite(v) and v > 0}
            except (OSError, ValueError):  # a damaged cache is measured again, not an error
                self.data = {}

    def get(self, key: str) -> float | None:
        v = self.data.get(key) if self.enabled else None
        if v is not None:
            self.hits += 1
        return v

    def put(self, values: dict[str, float]) -> None:
        self.data.update(values)

    def save(self) -> None:
        if not self.enabled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(self.data, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:  # an unwritable cache only costs a re-measurement next time
            pass


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            t = p.detach().contiguous().cpu()
            h.update(str((tuple(t.shape), str(t.dtype))).encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"|")
    return h.hexdigest()[:24]


# ---------------------------------------------------------------- the result


@dataclass
class Plan:
    """What :func:`plan` decided and measured.

    ``formats`` is {module: format} for :func:`prunebench.compile` (modules absent run
    dense); ``matrix_formats`` the same per weight matrix, for :func:`prunebench.save`;
    ``layers`` one dict per prunable layer: name, shape, sparsity, format (chosen), reason,
    ``times_ms`` {candidate: ms}, ``bytes`` {candidate: bytes}, ``unavailable``
    {format: why}. Whole-model times are in ``model_ms`` {dense, <format>, planned}."""

    objective: str
    engine: str
    values: str
    batch: int
    threads: int
    budget_ms: float | None
    formats: dict[str, str]
    matrix_formats: dict[str, str]
    layers: list[dict]
    model_ms: dict[str, float]
    model_bytes: dict[str, int]
    chosen_from: str
    per_layer_formats: dict[str, str]
    cache_hits: int = 0
    measured_s: float = 0.0
    format_options: dict = field(default_factory=dict)
    verify: dict | None = None
    #: the engine that runs the model, when :func:`plan` compared hosts (:mod:`prunebench.hosts`)
    host: dict | None = None

    @property
    def planned_ms(self) -> float:
        return self.model_ms["planned"]

    @property
    def dense_ms(self) -> float:
        return self.model_ms["dense"]

    @property
    def best_single_format(self) -> str | None:
        singles = {f: t for f, t in self.model_ms.items() if f not in ("dense", "planned",
                                                                       "per-layer")}
        return min(singles, key=singles.get) if singles else None

    @property
    def best_single_ms(self) -> float | None:
        f = self.best_single_format
        return None if f is None else self.model_ms[f]

    def to_json(self) -> dict:
        return {
            "objective": self.objective, "engine": self.engine, "values": self.values,
            "batch": self.batch, "threads": self.threads, "budget_ms": self.budget_ms,
            "planned_ms": self.planned_ms, "dense_ms": self.dense_ms,
            "best_single_ms": self.best_single_ms,
            "best_single_format": self.best_single_format,
            "speedup_vs_dense": self.dense_ms / self.planned_ms,
            "planned_bytes": self.model_bytes["planned"],
            "dense_bytes": self.model_bytes["dense"],
            "model_ms": self.model_ms, "model_bytes": self.model_bytes,
            "chosen_from": self.chosen_from, "formats": self.formats,
            "per_layer_formats": self.per_layer_formats,
            "format_options": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in self.format_options.items()},
            "cache_hits": self.cache_hits, "measured_s": self.measured_s,
            "verify": self.verify, "layers": self.layers, "host": self.host,
        }

    def compile(self, model: nn.Module):
        """``model`` (the pruned model planned for) compiled with this plan."""
        from . import engines

        if self.host and self.host["format"] != "planned":   # a whole-graph engine won
            return engines.compile(model, self.host["engine"], self.host["format"],
                                   threads=self.threads, fallback="dense")
        if not self.formats:  # every layer dense: exactly what dense PyTorch runs
            return engines.compile(model, "torch-dense", "dense", threads=self.threads)
        return engines.compile(model, self.engine, self.formats, values=self.values,
                               threads=self.threads, keep_smaller=False, fallback="error",
                               **self.format_options)

    def manifest(self) -> dict:
        """The part kept in a model file's manifest: per layer the chosen format and the
        measured time of each candidate (so ``inspect`` can say why)."""
        return {"objective": self.objective, "engine": self.engine, "batch": self.batch,
                "threads": self.threads, "budget_ms": self.budget_ms,
                "chosen_from": self.chosen_from,
                "model_ms": {k: round(v, 4) for k, v in self.model_ms.items()},
                "layers": {lay["name"]: {"format": lay["format"], "reason": lay["reason"],
                                         "times_ms": {f: round(t, 4) for f, t
                                                      in lay["times_ms"].items()},
                                         "bytes": lay["bytes"]}
                           for lay in self.layers}}


# ---------------------------------------------------------------- planning


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
    from .runtime.compile import VALUE_CHOICES, check_threads

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
    if values not in VALUE_CHOICES:
        raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_CHOICES)}")


def plan(model: nn.Module, example_input: torch.Tensor, *, objective: str = "latency",
         budget_ms: float | None = None, batch: int | None = None, threads: int = 1,
         engine: str = "native", values: str = "fp32", formats: tuple[str, ...] | None = None,
         cache: bool = True, progress: Callable[[str], None] | None = None,
         timer: Callable[..., dict[str, float]] | None = None,
         verify_labels: torch.Tensor | None = None, hosts: Any = False,
         **format_opts) -> Plan:
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
    formats : candidate formats (default: every format the engine runs); dense always is.
    cache : reuse timings measured before on this machine.
    timer : ``timer(fns, rounds=, label=) -> {key: ms}`` (default :func:`interleaved_ms`;
        tests inject timings through it). ``label`` is the layer name, or ``"model"``.
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
    from .runtime.compile import encoding_memo

    from .hosts import choose_host, parse_hosts

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
    from . import engines
    from .measure import fingerprint
    from .pruning.targets import prunable_layers
    from .runtime.compile import plan_matrices
    from .runtime.compile import compile as runtime_compile

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
    candidates = tuple(formats) if formats is not None else tuple(eng.formats)
    for f in candidates:
        if not eng.supports(f):
            raise BadInputError(f"formats: {f!r} is not a sparse format engine {engine!r} runs; "
                                f"it runs: {', '.join(x for x in eng.formats if x != 'dense')}")
    say = progress or (lambda _msg: None)
    timer = timer or _default_timer
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
    fastest: dict[str, str] = {}
    for mname in modules:
        module = model.get_submodule(mname)
        weights = [n for n, (mod, _, _, _) in matrices.items() if mod == mname]
        params = [p for _, p in module.named_parameters()]
        W = [p for n, p in module.named_parameters() if "weight" in n]
        zeros = sum(int((w == 0).sum()) for w in W)
        total = sum(w.numel() for w in W)
        row = {"name": mname, "kind": type(module).__name__,
               "shape": list(W[0].shape) if W else [], "matrices": weights,
               "sparsity": zeros / total if total else 0.0,
               "times_ms": {}, "bytes": {}, "unavailable": {}, "format": "dense",
               "reason": ""}
        layers.append(row)
        args = inputs.get(mname)
        problem = _left_dense(module, zeros, total, args, values)
        if problem:
            row["reason"] = problem
            row["bytes"]["dense"] = _dense_bytes(module, values)
            fastest[mname] = "dense"
            continue
        say(f"layer {mname}: timing dense and {len(candidates)} formats")
        base = _digest(settings, type(module).__name__, repr(module),
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
            nbytes = _op_bytes(cm) if f != "dense" \
                else _dense_bytes(module, values)
            row["bytes"][f] = nbytes
            if f != "dense" and nbytes > row["bytes"]["dense"]:
                # it moves more bytes than dense: it cannot win where bandwidth bounds the
                # time, and it cannot win on size (e.g. 4x4 blocks over scattered zeros)
                row["unavailable"][f] = (f"{nbytes} B, larger than dense "
                                         f"({row['bytes']['dense']} B): not timed")
                continue
            built[f] = cm
        keys = {f: _digest(base, f) for f in built}
        times = {f: tc.get(keys[f]) for f in built}
        todo = {f: (lambda cm=cm: cm(*args)) for f, cm in built.items() if times[f] is None}
        if todo:
            measured = timer(todo, rounds=LAYER_ROUNDS, label=mname)
            tc.put({keys[f]: t for f, t in measured.items()})
            times.update(measured)
        row["times_ms"] = {f: times[f] for f in built}
        fastest[mname] = _fastest(row["times_ms"], row["bytes"])
        built.clear()

    per_layer = {m: f for m, f in fastest.items() if f != "dense"}
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
    model_key = _digest(settings, tuple(x.shape), *[t for t in model.state_dict().values()])
    model_ms = _time_models(model, whole, build, x, tc, model_key, timer)

    bytes_of = {name: _plan_bytes(layers, p) for name, p in whole.items()}
    if objective == "latency":
        options = {"per-layer": model_ms["per-layer"], "dense": model_ms["dense"]}
        options.update({f: model_ms[f] for f in single})
        # the per-layer plan unless a whole model measured faster by more than noise (2%)
        chosen = "per-layer"
        best = min(options, key=options.get)
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
                             if fastest[lay["name"]] == f else
                             f"whole-model choice '{chosen}' (layer's fastest: "
                             f"{fastest[lay['name']]})")
        planned_ms = options[chosen]
    else:
        budget = budget_ms if budget_ms is not None else model_ms["dense"]
        chosen, final, planned_ms = _plan_size(model, layers, whole, model_ms, bytes_of,
                                               budget, build, x, tc, model_key, say, timer)
        budget_ms = budget
    model_ms["planned"] = planned_ms
    bytes_of["planned"] = _plan_bytes(layers, final)
    matrix_formats = {n: final[m] for n, (m, _, _, _) in matrices.items() if m in final}
    tc.save()
    # the chosen model must compute what the pruned model computes, on every example input
    from .runtime.verify import verify

    say("verifying the planned model against the pruned model")
    checked = verify(build(model, final or "dense"), model, example_input, verify_labels,
                     values=values)
    return Plan(objective=objective, engine=engine, values=values, batch=batch,
                threads=threads, budget_ms=budget_ms, formats=dict(final),
                matrix_formats=matrix_formats, layers=layers, model_ms=model_ms,
                model_bytes=bytes_of, chosen_from=chosen, per_layer_formats=per_layer,
                cache_hits=tc.hits, measured_s=time.perf_counter() - t_start,
                format_options=opts, verify=checked.as_dict())


def _fastest(times: dict[str, float], nbytes: dict[str, int]) -> str:
    """The layer's fastest candidate, where "faster" must exceed timing noise: a sparse format
    replaces dense only when it is more than ``DENSE_MARGIN`` faster, and among candidates
    within ``TIE`` of the fastest the smallest wins."""
    best = min(times.values())
    near = [f for f, t in times.items() if t <= best * (1 + TIE)]
    pick = min(near, key=lambda f: (nbytes.get(f, 0), times[f]))
    if "dense" in times and pick != "dense" and times[pick] > times["dense"] * (1 - DENSE_MARGIN):
        return "dense"
    return pick


def _default_timer(fns, *, rounds: int, label: str) -> dict[str, float]:
    return interleaved_ms(fns, rounds=rounds, drop_above=RACE_DROP)


def _time_models(model, plans: dict[str, dict], build, x, tc: TimingCache,
                 model_key: str, timer) -> dict[str, float]:
    """Whole-model milliseconds of each named plan; plans that are the same (the per-layer
    plan is often all dense, or all one format) are measured once under their first name."""
    keys = {k: _digest(model_key, sorted(p.items())) for k, p in plans.items()}
    first: dict[str, str] = {}
    for k in plans:
        first.setdefault(keys[k], k)
    out = {k: tc.get(key) for key, k in first.items()}
    todo = {}
    for key, k in first.items():
        if out[k] is None:
            cm = build(model, plans[k] if plans[k] else "dense")
            todo[k] = (lambda cm=cm: cm(x))
    if todo:
        measured = timer(todo, rounds=MODEL_ROUNDS, label="model")
        tc.put({keys[k]: t for k, t in measured.items()})
        out.update(measured)
    return {k: out[first[keys[k]]] for k in plans}


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
    measured = _time_models(model, {"size": cur}, build, x, tc, model_key, timer)["size"]
    while measured > budget and applied and tries < 6:
        name, prev = applied.pop()
        if prev == "dense":
            cur.pop(name, None)
        else:
            cur[name] = prev
        measured = _time_models(model, {"size": cur}, build, x, tc, model_key, timer)["size"]
        tries += 1
        say(f"size plan over budget; undid {name} ({measured:.3g} ms)")
    candidates = {"per-layer-size": (cur, measured)}
    for k, p in whole.items():
        candidates[k] = (p, model_ms[k])
    within = {k: v for k, v in candidates.items() if v[1] <= budget}
    if not within:  # nothing meets the budget: the fastest there is, said by the caller
        k = min(candidates, key=lambda k: candidates[k][1])
    else:
        k = min(within, key=lambda k: (_plan_bytes(layers, within[k][0]), within[k][1]))
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
    bytes_of["per-layer-size"] = _plan_bytes(layers, cur)
    return k, final, ms


#: the largest block a format stores whole (BSR up to 16 x 16): the fewest index bytes a
#: format can spend is one byte per such block of nonzeros
MAX_BLOCK = 256


def _left_dense(module: nn.Module, zeros: int, total: int, args, values: str) -> str | None:
    """Why a layer stays dense without timing any format, or None when it is a candidate."""
    from .runtime.compile import why_dense_only

    problem = why_dense_only(module)
    if problem:
        return problem
    if zeros == 0:
        return "not pruned (no zero weights)"
    if args is None:
        return "not called by the model's forward"
    if _too_few_zeros(zeros, total, values):
        return (f"{zeros} zero weights of {total}: too few for any format to be smaller "
                "than dense (not encoded)")
    return None


def _too_few_zeros(zeros: int, total: int, values: str) -> bool:
    """True when no sparse format can store the weights in fewer bytes than dense: every
    format keeps each nonzero value and at least one bit per weight (bitmap) or one index byte
    per block of up to ``MAX_BLOCK`` nonzeros, which costs more than the zeros save. Such a
    layer (an unpruned layer with a few exact zeros from initialisation) is not encoded."""
    from .formats.values import value_nbytes

    nnz = total - zeros
    return zeros * value_nbytes(values) <= min(total / 8, nnz / MAX_BLOCK)


def _dense_bytes(module: nn.Module, values: str) -> int:
    """Bytes of a module's weight matrices stored dense in ``values`` (as the runtime counts
    them: conv weights as out x in*k*k, int8 with a scale per row)."""
    from .runtime.compile import dense_matrix_bytes as matrix_bytes

    return sum(matrix_bytes((p.shape[0], p.numel() // p.shape[0]), values)
               for name, p in module.named_parameters() if "weight" in name)


def _op_bytes(cm) -> int:
    """Bytes of the weight matrices of a one-layer compiled model (biases not counted)."""
    return int(sum(r["bytes"] for r in cm.plan.values()))


def _plan_bytes(layers: list[dict], p: dict[str, str]) -> int:
    total = 0
    for lay in layers:
        f = p.get(lay["name"], "dense")
        total += lay["bytes"].get(f, lay["bytes"].get("dense", 0))
    return total
