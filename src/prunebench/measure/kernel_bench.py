"""Kernel benchmark: one weight matrix, every engine and format side by side, in one process.

For each shape, sparsity and batch it builds a float32 matrix ``W`` [rows=out, cols=in] with
the requested pattern, encodes it in every format an engine runs, and times the product
``X[B, cols] @ W.T`` through each engine's own operator (the same ops the compiled models
use: :class:`~prunebench.runtime.ops.KernelOp` for ``native``, torch sparse tensors,
SciPy arrays, a one-node ONNX Runtime graph, PyTorch's dense ``F.linear``).

Each row carries the median time, the speedup over ``torch-dense``, the bytes a call must
move (stored arrays + input + output), the effective GB/s and that as a fraction of this
machine's streaming-read bandwidth, measured in the same run (a vectorised parallel sum over
at least 256 MiB and at least the cold flush, :func:`.bandwidth.stream_bytes`, on the same
thread count).

Cache state: ``warm`` times repeated calls (a matrix smaller than the last-level cache then
comes from cache); ``cold`` streams a buffer larger than the LLC before every call (the
flush is outside the timed region, :class:`~prunebench.measure.Timer`'s ``between`` hook), so
weights come from DRAM as they do for a model larger than the cache, but so do the input and
the code of every call (the interpreter's, PyTorch's, NumPy's: a cold ``Tensor.numpy()`` alone
took 0.1 ms on the Xeon VM of 2026-12-05, warm well under 1 us). ``layer`` is the state of a
layer inside a model, whose weights are cold and whose input and code are warm because the
layer before it just ran: the flush, then (untimed) the same engine, format and value type on
a twin matrix, a copy of ``W`` encoded on its own (the same work and thread count, other
memory; an ONNX Runtime twin does not spin its threads after the call), with the same input.
Candidates are timed in rounds (every candidate once per round) so a burst of load from other
processes hits all of them alike.

Default shapes (W rows x cols = out x in): 4096x4096 (VGG FC), 768x3072 (BERT FFN down),
1000x2048 (ResNet-50 FC), 144x24 (MobileNetV2 1x1 expand conv at 56x56, batch = 3136
spatial positions); ``all_shapes`` adds 3072x768 (BERT FFN up), 1536x384 (MiniLM FFN up) and
4096x1024 (LSTM, 4 gates x 1024 hidden, input 1024).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from ..dtypes import VALUE_ENCODINGS
from ..errors import BadInputError
from .bandwidth import CacheFlush, OtherLoad, stream_bandwidth
from .timer import Timer

PATTERNS = ("unstructured", "block", "nm")
CACHES = ("warm", "cold", "layer", "both")   # both = warm and cold; a comma list names several
DEFAULT_SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
DEFAULT_BATCHES = (1, 32)
#: the sparse baseline of every row's ``speedup_vs_torch_sparse_csr``: torch-sparse on this
#: format (what ``Tensor.to_sparse_csr()`` builds), also timed with int64 indices and on SciPy
BASELINE = "csr"


@dataclass(frozen=True)
class Shape:
    """A weight matrix to benchmark: ``rows`` x ``cols`` (out x in); ``batch`` fixes the batch
    (a convolution's spatial positions) instead of the command's batch list."""

    rows: int
    cols: int
    label: str = ""
    batch: int | None = None

    @property
    def name(self) -> str:
        return f"{self.rows}x{self.cols}"


DEFAULT_SHAPES = (Shape(4096, 4096, "VGG FC"), Shape(768, 3072, "BERT FFN down"),
                  Shape(1000, 2048, "ResNet-50 FC"),
                  Shape(144, 24, "MobileNetV2 1x1 conv at 56x56", batch=3136))
EXTRA_SHAPES = (Shape(3072, 768, "BERT FFN up"), Shape(1536, 384, "MiniLM FFN up"),
                Shape(4096, 1024, "LSTM 4x1024 gates"))


# ---------------------------------------------------------------- argument checks


def parse_shape(text: str) -> Shape:
    """``"ROWSxCOLS"`` (optionally ``@BATCH``) as a :class:`Shape`."""
    body, _, batch = str(text).strip().lower().partition("@")
    try:
        rows, cols = (int(v) for v in body.split("x"))
        b = int(batch) if batch else None
    except ValueError:
        raise BadInputError(f"--shape: got {text!r}, expected ROWSxCOLS (out x in) such as "
                            "4096x4096, optionally @BATCH") from None
    if rows < 1 or cols < 1 or (b is not None and b < 1):
        raise BadInputError(f"--shape: got {text!r}; rows, cols and batch must be >= 1")
    return Shape(rows, cols, "", b)


def check_sparsities(values: Iterable[Any]) -> list[float]:
    out = []
    for s in values:
        ok = isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s)
        if not ok or not 0.0 <= s < 1.0:
            raise BadInputError(f"--sparsity: got {s!r}; every sparsity must be in [0, 1)")
        out.append(float(s))
    if not out:
        raise BadInputError("--sparsity: give at least one sparsity in [0, 1)")
    return out


def check_kernel_threads(threads: Any) -> int:
    from .. import kernels as K

    limit = min(os.cpu_count() or 1, K.max_threads())
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= limit:
        raise BadInputError(f"--threads: got {threads!r}; this machine runs 1..{limit}")
    return threads


def _check_choice(arg, value, allowed):
    if value not in allowed:
        raise BadInputError(f"{arg}: got {value!r}; allowed: {', '.join(allowed)}")
    return value


# ---------------------------------------------------------------- matrices


def make_matrix(shape: Shape, sparsity: float, pattern: str, rng: np.random.Generator,
                block: tuple[int, int] = (4, 4)) -> tuple[np.ndarray, float, str]:
    """(W, actual sparsity, pattern note) for a requested sparsity and pattern."""
    rows, cols = shape.rows, shape.cols
    W = rng.standard_normal((rows, cols), dtype=np.float32)
    if pattern == "unstructured":
        W[rng.random((rows, cols)) < sparsity] = 0
        note = ""
    elif pattern == "block":
        r, c = block
        keep = rng.random((-(-rows // r), -(-cols // c))) >= sparsity
        mask = np.kron(keep, np.ones((r, c), bool))[:rows, :cols]
        W = np.where(mask, W, 0).astype(np.float32)
        note = f"{r}x{c} blocks"
    else:
        n, m = nm_for(sparsity)
        G = -(-cols // m)
        keys = rng.random((rows, G, m))
        keep = keys.argsort(axis=2).argsort(axis=2) < n
        W = np.where(keep.reshape(rows, G * m)[:, :cols], W, 0).astype(np.float32)
        note = f"{n}:{m}"
    W[W == 0] = 0   # no -0.0
    return np.ascontiguousarray(W), float((W == 0).mean()), note


def nm_for(sparsity: float) -> tuple[int, int]:
    """The (n, m), m in 4, 8, 16 and n < m, whose sparsity 1 - n/m is nearest ``sparsity``."""
    pairs = [(n, m) for m in (4, 8, 16) for n in range(1, m)]
    return min(pairs, key=lambda p: (abs(1 - p[0] / p[1] - sparsity), p[1]))


# ---------------------------------------------------------------- candidates


@dataclass
class Candidate:
    engine: str
    format: str
    values: str
    nbytes: int
    call: Any
    threads_effective: int
    variant: str = ""
    samples: list = field(default_factory=list)


class _OrtMatMul:
    """ONNX Runtime running one MatMul by the dense initializer W.T."""

    def __init__(self, W: np.ndarray, threads: int, spin: bool = True):
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        rows, cols = W.shape
        node = helper.make_node("MatMul", ["x", "wt"], ["y"])
        graph = helper.make_graph(
            [node], "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", cols])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", rows])],
            [numpy_helper.from_array(np.ascontiguousarray(W.T), "wt")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = min(model.ir_version, 9)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        if not spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(model.SerializeToString(), so,
                                         providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray):
        return self.sess.run(None, {"x": x})[0]


def candidates(W: np.ndarray, pattern: str, threads: int, values: tuple[str, ...],
               block: tuple[int, int] = (4, 4), nm: tuple[int, int] | None = None,
               twin: bool = False) -> tuple[list[Candidate], list[dict]]:
    """Every engine/format that can hold ``W``: (candidates, skipped [{engine, format, reason}]).

    A format whose encoding would be larger than dense fp32 is skipped (it cannot win), and
    so are formats the pattern does not fit (nm on a matrix that is not N:M sparse; bsr on an
    unstructured matrix unless it is smaller than dense). ``twin``: the twins of a ``layer``
    run, which keep every candidate and whose ONNX Runtime threads sleep after a call (its
    spinning pool would compete with the timed candidate's)."""
    from .. import kernels as K
    from ..engines.scipy_engine import ScipyOp
    from ..engines.torch_sparse import TORCH_SPARSE, TorchSparseOp
    from ..formats import FORMATS, encode
    from ..formats.values import value_nbytes
    from ..runtime.encoding import runtime_options
    from ..runtime.ops import DenseOp, KernelOp, MatrixOp

    rows, cols = W.shape
    dense_bytes = W.nbytes
    Wt = torch.from_numpy(W)
    out = [Candidate("torch-dense", "dense", "fp32", dense_bytes, DenseOp(Wt).linear, threads)]
    skipped = []
    # every format with a registered kernel; one that holds a single pattern (nm) only with it
    fmts = [f for f in K.KERNELS
            if not FORMATS.get(f).pattern_only or FORMATS.get(f).pattern == pattern]
    given = {"block": tuple(block), **({"n": nm[0], "m": nm[1]} if nm else {})}
    encoded = {}
    for f in fmts:
        for v in values:
            try:
                fmt = encode(W, f, values=v, **runtime_options(f, given))
            except BadInputError as e:
                skipped.append({"engine": "native", "format": f, "values": v, "reason": str(e)})
                continue
            if not twin and fmt.nbytes()["total"] > W.size * value_nbytes(v):
                skipped.append({"engine": "native", "format": f, "values": v,
                                "reason": f"{f} {v} would take {fmt.nbytes()['total']} B, more "
                                          "than dense"})
                continue
            encoded[(f, v)] = fmt
            op: MatrixOp = KernelOp(fmt, None, threads)
            out.append(Candidate("native", f, v, op.nbytes(), op.linear, threads))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in TORCH_SPARSE.formats:
            if (f, "fp32") in encoded:
                op = TorchSparseOp(encoded[(f, "fp32")], None)
                out.append(Candidate("torch-sparse", f, "fp32", op.nbytes(), op.linear, threads))
        if (BASELINE, "fp32") in encoded:     # what Tensor.to_sparse_csr() builds
            op = TorchSparseOp(encoded[(BASELINE, "fp32")], None, index_dtype=np.int64)
            out.append(Candidate("torch-sparse", BASELINE, "fp32", op.nbytes(), op.linear,
                                 threads, variant="int64 indices"))
    if (BASELINE, "fp32") in encoded:
        op = ScipyOp(encoded[(BASELINE, "fp32")], None)
        out.append(Candidate("scipy", BASELINE, "fp32", op.nbytes(), op.linear, 1))
    ort_mm = _OrtMatMul(W, threads, spin=not twin)
    out.append(Candidate("onnxruntime", "dense", "fp32", dense_bytes,
                         lambda X: torch.from_numpy(ort_mm(X.numpy())), threads))
    return out, skipped


# ---------------------------------------------------------------- the run


def _key(c: Candidate) -> tuple[str, str, str, str]:
    return c.engine, c.format, c.values, c.variant


def _time(cands: list[Candidate], X: torch.Tensor, repeats: int, rounds: int,
          flush: CacheFlush | None, twins: dict[tuple, Candidate] | None = None) -> None:
    """Fill each candidate's ``samples`` (seconds): ``rounds`` rounds of every candidate.
    With ``twins`` (a ``layer`` run) each flush is followed by the candidate's twin product
    (a candidate without one, which no kernel lacks today, gets the flush alone; its rows say
    ``twin: false``)."""
    for c in cands:
        c.samples = []
        c.call(X)                                   # compile / first-touch outside timing
    if twins is not None:
        for t in twins.values():
            t.call(X)
    per = max(1, -(-repeats // rounds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # the Timer's noisy-IQR warning: we report it
        for _ in range(rounds):
            for c in cands:
                def call(c: Candidate = c) -> Any:
                    return c.call(X)

                between: Callable[[], Any] | None = flush
                twin = twins.get(_key(c)) if twins is not None else None
                if flush is not None and twin is not None:
                    def between(twin: Candidate = twin, flush: CacheFlush = flush) -> None:
                        flush()
                        twin.call(X)

                m = Timer(call, warmup=0 if flush else 1, min_runs=per,
                          min_time=0.0, max_runs=per, between=between).run()
                c.samples.extend(m.samples)


def _check_correct(cands: list[Candidate], W: np.ndarray, X: torch.Tensor) -> None:
    """Every candidate computes ``X @ W.T`` (fp32 ones to 1e-4 of the output scale): a
    benchmark of a wrong product would be meaningless."""
    ref = X.double() @ torch.from_numpy(W).double().T
    scale = float(ref.abs().max()) or 1.0
    tol = {"fp32": 1e-4, "fp16": 2e-2, "int8": 1.5e-1}
    for c in cands:
        got = torch.as_tensor(c.call(X)).double()
        err = float((got - ref).abs().max()) / scale
        if not err <= tol[c.values]:
            raise RuntimeError(f"{c.engine} {c.format} {c.values}: relative error {err:.3g}")


def cache_modes(cache: str) -> list[str]:
    """``--cache`` (one of :data:`CACHES` or a comma list of them) as the modes to run, in order."""
    allowed = f"allowed: {', '.join(CACHES)}, or a comma list of them"
    if not isinstance(cache, str) or not cache.strip():
        raise BadInputError(f"--cache: got {cache!r}; {allowed}")
    modes: list[str] = []
    for part in (p.strip() for p in cache.split(",")):
        if part not in CACHES:
            raise BadInputError(f"--cache: got {cache!r} ({part!r} is not a cache state); {allowed}")
        for m in (["warm", "cold"] if part == "both" else [part]):
            if m not in modes:
                modes.append(m)
    return modes


def run(shapes: list[Shape] | None = None, sparsities: Iterable[float] = DEFAULT_SPARSITIES,
        batches: Iterable[int] = DEFAULT_BATCHES, pattern: str = "unstructured", threads: int | None = None,
        cache: str = "cold", values: tuple[str, ...] = ("fp32",), repeats: int = 15,
        rounds: int = 3, block: tuple[int, int] = (4, 4), seed: int = 0,
        matrices: list[tuple[Shape, np.ndarray, dict]] | None = None,
        progress: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; returns {"meta", "rows", "crossover", "skipped"}.

    ``matrices`` replaces the synthetic matrices with real ones ([(shape, W, info)], e.g. a
    pruned model's weight matrices; their sparsity is what it is).
    """
    from .. import kernels as K

    threads = check_kernel_threads(threads if threads is not None else
                                   min(os.cpu_count() or 1, K.max_threads()))
    _check_choice("--pattern", pattern, PATTERNS)
    modes = cache_modes(cache)
    for v in values:
        _check_choice("--values", v, VALUE_ENCODINGS)
    batches = [int(b) for b in batches]
    if any(b < 1 for b in batches):
        raise BadInputError(f"--batch: got {batches}; every batch must be >= 1")
    if matrices is None:
        sparsities = check_sparsities(list(sparsities))
        shapes = list(shapes) if shapes else list(DEFAULT_SHAPES)
    K.set_threads(threads)
    torch.set_num_threads(threads)
    bandwidth = stream_bandwidth(threads)
    flush = CacheFlush(threads) if set(modes) - {"warm"} else None
    rng = np.random.default_rng(seed)
    rows_out, skipped_all = [], []
    started = time.perf_counter()
    whole_run = OtherLoad()

    def jobs():
        if matrices is not None:
            for shape, W, info in matrices:
                yield shape, float(info.get("sparsity", (W == 0).mean())), W, info
            return
        for shape in shapes:
            for s in sparsities:
                W, actual, note = make_matrix(shape, s, pattern, rng, block)
                yield shape, s, W, {"actual_sparsity": actual, "pattern_note": note}

    for shape, s, W, info in jobs():
        nm = nm_for(s) if pattern == "nm" and matrices is None else None
        cands, skipped = candidates(W, pattern, threads, tuple(values), block, nm)
        twins = None
        if "layer" in modes:
            copies, _ = candidates(W.copy(), pattern, threads, tuple(values), block, nm,
                                   twin=True)
            twins = {_key(t): t for t in copies}
        for sk in skipped:
            skipped_all.append(dict(sk, shape=[shape.rows, shape.cols], sparsity=s))
        for batch in ([shape.batch] if shape.batch else batches):
            X = torch.from_numpy(rng.standard_normal((batch, shape.cols), dtype=np.float32))
            _check_correct(cands, W, X)
            io = X.numel() * 4 + batch * shape.rows * 4
            for mode in modes:
                if progress:
                    progress(f"{shape.name} s={s:.2f} batch {batch} {mode}")
                load = OtherLoad()
                _time(cands, X, repeats, rounds, None if mode == "warm" else flush,
                      twins if mode == "layer" else None)
                other = load.cores()
                med = {id(c): float(np.median(c.samples)) for c in cands}
                dense = med[id(cands[0])]
                tsc = next((med[id(c)] for c in cands if c.engine == "torch-sparse"
                            and c.format == BASELINE and not c.variant), None)
                for c in cands:
                    t = med[id(c)]
                    q1, q3 = np.percentile(c.samples, [25, 75])
                    moved = c.nbytes + io
                    rows_out.append({
                        "shape": [shape.rows, shape.cols], "label": shape.label or info.get("layer", ""),
                        "sparsity": s, "actual_sparsity": info.get("actual_sparsity", s),
                        "pattern": pattern if matrices is None else "model",
                        "pattern_note": info.get("pattern_note", ""),
                        "batch": batch, "engine": c.engine, "format": c.format, "values": c.values,
                        "variant": c.variant,
                        "cache": mode, "threads": threads, "threads_effective": c.threads_effective,
                        "twin": (twins is not None and _key(c) in twins) if mode == "layer" else None,
                        "ms": t * 1e3, "min_ms": float(np.min(c.samples)) * 1e3,
                        "iqr_ms": float(q3 - q1) * 1e3, "runs": len(c.samples),
                        "noisy": bool(q3 - q1 > 0.1 * t), "other_load_cores": other,
                        "speedup_vs_dense": dense / t,
                        "speedup_vs_torch_sparse_csr": (tsc / t) if tsc else None,
                        "bytes": int(moved), "gbps": moved / t / 1e9,
                        "bandwidth_fraction": moved / t / bandwidth,
                        **({"layer": info["layer"], "model": info.get("model")}
                           if "layer" in info else {}),
                    })
    bandwidth_end = stream_bandwidth(threads)
    if bandwidth_end > bandwidth:     # rows use the start figure; the larger one is reported
        for r in rows_out:
            r["bandwidth_fraction"] = r["gbps"] * 1e9 / bandwidth_end
        bandwidth = bandwidth_end
    meta = {"threads": threads, "stream_gbps": bandwidth / 1e9,
            "flush_mib": flush.buf.nbytes >> 20 if flush else 0,
            "repeats": repeats, "rounds": rounds, "pattern": pattern, "cache": cache,
            "seed": seed, "seconds": time.perf_counter() - started,
            "other_load_cores": whole_run.cores(), "omp_wait_policy": K.wait_policy()}
    return {"meta": meta, "rows": rows_out, "crossover": crossovers(rows_out),
            "skipped": skipped_all}


def crossovers(rows: list[dict]) -> list[dict]:
    """Per shape, batch and cache state: the lowest sparsity at which some sparse format
    (any engine) runs faster than torch-dense, and which one (None when none does)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (tuple(r["shape"]), r.get("layer", ""), r["batch"], r["cache"])
        groups.setdefault(key, []).append(r)
    out = []
    for (shape, layer, batch, cache), rs in groups.items():
        winners = sorted((r for r in rs if r["format"] != "dense" and r["speedup_vs_dense"] > 1),
                         key=lambda r: (r["sparsity"], -r["speedup_vs_dense"]))
        native = sorted((r for r in rs if r["engine"] == "native" and r["speedup_vs_dense"] > 1),
                        key=lambda r: (r["sparsity"], -r["speedup_vs_dense"]))
        best = winners[0] if winners else None
        out.append({"shape": list(shape), **({"layer": layer} if layer else {}), "batch": batch,
                    "cache": cache, "sparsities": sorted({r["sparsity"] for r in rs}),
                    "sparsity": best["sparsity"] if best else None,
                    "engine": best["engine"] if best else None,
                    "format": best["format"] if best else None,
                    "values": best["values"] if best else None,
                    "variant": best.get("variant", "") if best else None,
                    "speedup_vs_dense": best["speedup_vs_dense"] if best else None,
                    "native_sparsity": native[0]["sparsity"] if native else None,
                    "native_format": native[0]["format"] if native else None})
    return out


def model_matrices(model_name: str, method: str, sparsities: Iterable[float], seed: int = 0,
                   progress: bool = False) -> list[tuple[Shape, np.ndarray, dict]]:
    """The pruned weight matrices of a zoo model, as the runtime runs them: Linear ``[out,
    in]``, Conv ``[out, in * k * k]``, RNN weights with their gates stacked; only matrices
    with zeros. The model is pruned (no fine-tuning) with ``method`` at each sparsity."""
    from .. import zoo
    from ..pruning import prune

    spec = zoo.get_spec(model_name)
    net, data = zoo.load(model_name, trained=spec.trained, seed=seed, progress=progress)
    example = spec.example_input(1, seed)
    out = []
    for s in check_sparsities(list(sparsities)):
        res = prune(net, method, s, seed=seed, example_input=example)
        pruned_sparsity = res.report()["sparsity_achieved"]
        seen = set()
        for name, p in res.model.named_parameters():
            if not name.endswith("weight") and "weight_" not in name:
                continue
            if p.dim() < 2:
                continue
            W = np.ascontiguousarray(p.detach().reshape(p.shape[0], -1).numpy(), dtype=np.float32)
            zeros = float((W == 0).mean())
            if zeros == 0 or name in seen:
                continue
            seen.add(name)
            out.append((Shape(W.shape[0], W.shape[1], name), W,
                        {"sparsity": round(pruned_sparsity if method == "nm" else s, 4),
                         "actual_sparsity": zeros, "layer": name, "model": model_name}))
    if not out:
        raise BadInputError(f"--from-model {model_name} --method {method}: no weight matrix "
                            "has zeros after pruning")
    return out
