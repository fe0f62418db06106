"""``compile(model, plan)``: a pruned model whose pruned layers run on a storage format.

The plan names a format for every prunable weight matrix (the names of
:func:`prunebench.runtime.modelfile.encode_model`: ``fc.weight``, ``conv1.weight`` as the
``[out, in * k * k]`` matrix, ``rnn.weight_hh_l0[1]`` for one RNN gate). Each such matrix is
encoded with :mod:`prunebench.formats`, handed to a :class:`Backend` (our kernels by default;
the ``torch-sparse`` and ``scipy`` engines bring their own) and its module is replaced by a
sparse layer of :mod:`prunebench.runtime.layers`. Everything else (activations, norms,
pooling, depthwise convolutions, unpruned layers) stays PyTorch.

Which layers run sparse
-----------------------
* A matrix without a single zero is *not pruned* and stays dense, whatever the plan says.
* ``nn.Linear`` (any leading dimensions; also transformers' ``Conv1D``, whose ``[in, out]``
  weight is encoded as its ``[out, in]`` transpose), ``nn.Conv1d``/``nn.Conv2d`` with ``groups=1`` and
  zero padding, ``nn.GRU``/``nn.LSTM``/``nn.RNN`` and the q/k/v projections of
  ``nn.MultiheadAttention`` can run any format of the backend. Depthwise and grouped
  convolutions, ``nn.Conv3d`` and other padding modes cannot.
* An ``nn.MultiheadAttention`` with a sparse projection or ``out_proj`` becomes a
  :class:`~prunebench.runtime.layers.SparseMultiheadAttention`, and PyTorch's fused attention
  fast paths (``torch.backends.mha``), which read dense weights, are off while the compiled
  model runs: it computes the slow path's function, which the fast path matches to float
  rounding. (With ``src_key_padding_mask``, ``nn.TransformerEncoder``'s nested-tensor path
  returns 0 at padded positions; the compiled model returns the slow path's values there.)
* A Parameter tied between modules is one matrix (named after its first name in
  ``named_parameters()``): encoded once, every module that uses it runs on that encoding.
* A pruned matrix the requested format cannot hold (a layer type above, or ``nm`` on a
  matrix that is not N:M sparse) raises :class:`BadInputError` naming the layer, unless
  ``fallback="dense"`` (the "auto-dense" plan): then it stays dense and the plan says why.
* With ``keep_smaller`` (default) a matrix whose encoding would take more bytes than dense
  in the same value encoding stays dense, and the plan says so.

Format options: ``block`` (bsr, default 4x4), ``n``/``m`` (nm, default 2:4),
``slice_height`` (ell; default 32 here, a sliced ELL, rather than the format's plain ELL).
"""
from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..dtypes import VALUE_ENCODINGS
from ..errors import BadInputError
from ..formats import FORMATS, Format, encode
from ..formats.values import value_nbytes
from ..pruning.targets import (ATTENTION_TYPES, CONV_TYPES, RNN_TYPES, canonical_names,
                               is_transposed_linear, layer_kind, prunable_layers, weights_of)
from .layers import SparseConv, SparseLinear, SparseMultiheadAttention, SparseRNN
from .ops import NATIVE, Backend, DenseOp, MatrixOp, StackedOp
from .encoding import FORMAT_OPTIONS, misfit, runtime_options

FALLBACKS = ("error", "dense")


def check_threads(threads: Any, limit: int | None = None) -> int:
    """``threads`` as an int in [1, limit] (default: this machine's cores)."""
    limit = limit or os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) \
            or not 1 <= threads <= limit:
        raise BadInputError(f"threads={threads!r} should be an integer in [1, {limit}] "
                            f"(cores this machine can run)")
    return int(threads)


# ---------------------------------------------------------------- the plan


def plan_matrices(model: nn.Module) -> dict[str, tuple[str, str, int, int]]:
    """{matrix name: (module name, parameter name, gate, gates)} in definition order; a tied
    Parameter is one matrix under its first name, with the first module that uses it."""
    canonical = canonical_names(model)
    out: dict[str, tuple[str, str, int, int]] = {}
    for mname in prunable_layers(model):
        for w in weights_of(model, mname):
            pname = canonical.get(w.name, w.name)
            for g in range(w.gates):
                out.setdefault(pname if w.gates == 1 else f"{pname}[{g}]",
                               (mname, pname, g, w.gates))
    return out


def _users(model: nn.Module) -> dict[str, list[str]]:
    """{parameter name (first name): modules whose prunable weight it is}."""
    canonical = canonical_names(model)
    out: dict[str, list[str]] = {}
    for mname in prunable_layers(model):
        for w in weights_of(model, mname):
            out.setdefault(canonical.get(w.name, w.name), []).append(mname)
    return out


def _matrix_names(model: nn.Module, mname: str) -> list[str]:
    """The matrix names (as :func:`plan_matrices` keys them) of one module's prunable weights."""
    canonical = canonical_names(model)
    out = []
    for w in weights_of(model, mname):
        pname = canonical.get(w.name, w.name)
        out += [pname] if w.gates == 1 else [f"{pname}[{g}]" for g in range(w.gates)]
    return out


def _resolve_plan(plan: Any, matrices: dict, backend: Backend,
                  aliases: dict[str, str] | None = None,
                  by_module: dict[str, list[str]] | None = None) -> dict[str, str]:
    """{matrix: format} from a format name or a dict keyed by matrix, parameter (any name of a
    tied one: ``aliases`` maps them to the first) or module (``by_module``: its matrices)."""
    aliases, by_module = aliases or {}, by_module or {}
    def check_format(f: Any, where: str) -> str:
        if f == "dense":
            return f
        if not isinstance(f, str):
            raise BadInputError(f"plan{where}: format {f!r} should be a format name")
        FORMATS.get(f)   # unknown names list the valid ones
        if f not in backend.formats:
            raise BadInputError(f"plan{where}: engine {backend.name} cannot run format {f!r}; "
                                f"it runs: {', '.join(backend.formats)} (and dense)")
        return f

    if isinstance(plan, str):
        f = check_format(plan, "")
        return {name: f for name in matrices}
    if not isinstance(plan, dict):
        raise BadInputError(f"plan={plan!r} should be a format name or a dict "
                            "{layer: format}")
    out = {name: "dense" for name in matrices}
    for key, f in plan.items():
        key = aliases.get(key, key) if isinstance(key, str) else key
        hit = [n for n, (mod, param, _, _) in matrices.items() if key in (n, param, mod)] \
            or by_module.get(key, [])          # the second user of a tied weight
        if not hit:
            raise BadInputError(f"plan: unknown layer {key!r}; layers: {', '.join(matrices)}")
        f = check_format(f, f"[{key!r}]")
        for n in hit:
            out[n] = f
    return out


def why_dense_only(module: nn.Module) -> str | None:
    """Why a module's matrices cannot run sparse at all (None when they can)."""
    if isinstance(module, CONV_TYPES):
        kind = type(module).__name__
        if not isinstance(module, (nn.Conv1d, nn.Conv2d)):
            return f"{kind} has no sparse layer here (Conv1d and Conv2d do)"
        if module.groups != 1:
            depthwise = module.groups == module.in_channels
            what = "depthwise" if depthwise else "grouped"
            return (f"{what} {kind} (groups={module.groups}) runs dense PyTorch only (sparse "
                    "convolutions need groups=1)")
        if module.padding_mode != "zeros":
            return f"{kind} with padding_mode={module.padding_mode!r} runs dense only"
    return None


def dense_matrix_bytes(shape: tuple[int, ...], values: str) -> int:
    rows, cols = shape
    return rows * cols * value_nbytes(values) + (4 * rows if values == "int8" else 0)


_MEMO: dict | None = None


@contextlib.contextmanager
def encoding_memo() -> Iterator[None]:
    """Within this block, encoding the same weight matrix (same memory, shape and strides) in
    the same format, values and options again reuses the first encoding. The planner compiles
    every layer in every format, then whole models in the same formats: this halves its
    work. Only for matrices that do not change inside the block."""
    global _MEMO
    outer, _MEMO = _MEMO, ({} if _MEMO is None else _MEMO)
    try:
        yield
    finally:
        _MEMO = outer


def _encode(name: str, W: np.ndarray, fmt: str, values: str, opts: dict) -> Format:
    memo, key = _MEMO, None
    if memo is not None:
        key = (W.ctypes.data, W.shape, W.strides, W.dtype.str, fmt, values,
               tuple(sorted(opts.items())))
        if key in memo:
            return memo[key][0]
    try:
        out = encode(W, fmt, values=values, **opts)
    except BadInputError as e:
        raise BadInputError(f"layer {name}: {e}") from None
    if key is not None and memo is not None:
        memo[key] = (out, W)  # W kept alive: its address cannot be reused inside the block
    return out


def _check_format_opts(format_opts: dict) -> None:
    allowed = {k for d in FORMAT_OPTIONS.values() for k in d}
    unknown = sorted(set(format_opts) - allowed)
    if unknown:
        raise BadInputError(f"compile: unknown format option(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(allowed))}")


def plan_model(model: nn.Module, plan: Any = "csr", *, values: str = "fp32",
               fallback: str = "error", keep_smaller: bool = True, backend: Backend = NATIVE,
               **format_opts: Any) -> tuple[dict[str, dict], dict[str, Format]]:
    """Decide and encode every prunable matrix; see the module docstring for the rules.

    Returns (plan {matrix: {module, kind, format, requested, reason, shape, sparsity, values,
    bytes, dense_bytes}}, encoded {matrix: Format} for the matrices that run sparse).
    """
    if values not in VALUE_ENCODINGS:
        raise BadInputError(f"values={values!r} is not allowed; allowed: "
                            f"{', '.join(VALUE_ENCODINGS)}")
    if values not in backend.values:
        raise BadInputError(f"engine {backend.name} runs values {', '.join(backend.values)}; "
                            f"got values={values!r}")
    if fallback not in FALLBACKS:
        raise BadInputError(f"fallback={fallback!r} is not allowed; allowed: {', '.join(FALLBACKS)}")
    _check_format_opts(format_opts)
    matrices = plan_matrices(model)
    if not matrices:
        raise BadInputError(f"model {type(model).__name__} has no Linear, Conv or RNN layer")
    wanted = _resolve_plan(plan, matrices, backend, canonical_names(model),
                           {m: _matrix_names(model, m) for m in prunable_layers(model)})
    params = dict(model.named_parameters())
    users = _users(model)
    out: dict[str, dict[str, Any]] = {}
    encoded: dict[str, Format] = {}
    for name, (mname, pname, g, gates) in matrices.items():
        module = model.get_submodule(mname)
        t = params[pname].detach()
        if is_transposed_linear(module):        # transformers' Conv1D: weight [in, out]
            t = t.t()
        W = np.ascontiguousarray(t.reshape(gates, t.shape[0] // gates, -1)[g].float().numpy())
        want = wanted[name]
        sparsity = float((W == 0).mean())
        kind = layer_kind(module)
        row: dict[str, Any] = {"module": mname, "kind": kind, "format": "dense", "requested": want,
               "reason": "requested", "shape": list(W.shape), "sparsity": sparsity,
               "values": "fp32", "bytes": dense_matrix_bytes(W.shape, "fp32"),
               "dense_bytes": dense_matrix_bytes(W.shape, values)}
        if len(users[pname]) > 1:
            row["modules"] = users[pname]          # tied: every one runs on this encoding
        out[name] = row
        if want == "dense":
            continue
        if sparsity == 0:
            row["reason"] = "not pruned (no zero weights); runs dense PyTorch"
            continue
        opts = runtime_options(want, format_opts)
        problem = next((p for p in map(why_dense_only, map(model.get_submodule, users[pname])) if p),
                       None)
        if problem is None:
            why = misfit(want, W, opts)
            problem = f"{why} for format {want}" if why else None
        if problem:
            if fallback == "error":
                raise BadInputError(f"layer {name}: {problem}; cannot run format {want!r} "
                                    "(fallback='dense' / --fallback dense keeps it dense)")
            row["reason"] = f"{problem}; kept dense (fallback)"
            continue
        fmt = _encode(name, W, want, values, opts)
        nbytes = fmt.nbytes()["total"]
        if keep_smaller and nbytes > row["dense_bytes"]:
            row["reason"] = (f"{want} would take {nbytes} B > dense {row['dense_bytes']} B at "
                             f"sparsity {sparsity:.2f}; runs dense PyTorch")
            continue
        row.update(format=want, values=values, bytes=nbytes)
        encoded[name] = fmt
    return out, encoded


# ---------------------------------------------------------------- building the model


def _bias(module: nn.Module, attr: str) -> torch.Tensor | None:
    b = getattr(module, attr, None)
    return None if b is None else b.detach().float()


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else np.ascontiguousarray(t.numpy(), dtype=np.float32)


def _rnn_ops(work: nn.Module, mname: str, matrix_names: list[str], plan: dict, encoded: dict,
             backend: Backend, threads: int, format_opts: dict, values: str) -> dict[str, MatrixOp]:
    """{weight attribute: op} of one RNN module, with its gates' biases fused in."""
    module = work.get_submodule(mname)
    ops: dict[str, MatrixOp] = {}
    start = 0
    for w in weights_of(work, mname):
        attr = w.name.rpartition(".")[2]                         # weight_hh_l0_reverse
        P = getattr(module, attr).detach().float()
        bias = _bias(module, attr.replace("weight", "bias")) if not attr.startswith("weight_hr") else None
        names = matrix_names[start:start + w.gates]
        start += w.gates
        fmts = {plan[n]["format"] for n in names}
        rows = P.shape[0] // w.gates
        if fmts == {"dense"}:
            ops[attr] = DenseOp(P, bias)
        elif len(fmts) == 1:
            # every gate in the same format: one matrix of all gates, one product per step
            f = next(iter(fmts))
            stacked = _encode(w.name, np.ascontiguousarray(P.numpy()), f, values,
                              runtime_options(f, format_opts))
            ops[attr] = backend.make_op(stacked, _np(bias), threads)
        else:
            parts: list[MatrixOp] = []
            for g, n in enumerate(names):
                b = None if bias is None else bias[g * rows:(g + 1) * rows]
                if n in encoded:
                    parts.append(backend.make_op(encoded[n], _np(b), threads))
                else:
                    parts.append(DenseOp(P[g * rows:(g + 1) * rows], b))
            ops[attr] = StackedOp(parts)
    return ops


def _attention_ops(module: nn.MultiheadAttention, names: list[str], encoded: dict,
                   backend: Backend, threads: int) -> dict[str, MatrixOp]:
    """{"q": op, "k": op, "v": op} of one nn.MultiheadAttention, biases fused in."""
    bias = _bias(module, "in_proj_bias")
    E = module.embed_dim
    if module.in_proj_weight is not None:
        P = module.in_proj_weight.detach().float()
        dense = [P[i * E:(i + 1) * E] for i in range(3)]
    else:
        dense = [getattr(module, f"{p}_proj_weight").detach().float() for p in "qkv"]
    ops = {}
    for i, (which, n) in enumerate(zip("qkv", names)):
        b = None if bias is None else bias[i * E:(i + 1) * E]
        ops[which] = (backend.make_op(encoded[n], _np(b), threads) if n in encoded
                      else DenseOp(dense[i], b))
    return ops


def _replace(model: nn.Module, mname: str, new: nn.Module) -> nn.Module:
    if not mname:
        return new
    parent, _, child = mname.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)
    return model


SPARSE_LAYERS = (SparseLinear, SparseConv, SparseRNN, SparseMultiheadAttention)


@contextlib.contextmanager
def mha_fastpath(enabled: bool) -> Iterator[None]:
    """``torch.backends.mha``'s fast path set to ``enabled`` inside the block (restored)."""
    before = torch.backends.mha.get_fastpath_enabled()
    if before == enabled:
        yield
        return
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


class CompiledModel(nn.Module):
    """A pruned model with its pruned layers on a storage format (what :func:`compile`
    returns). Calling it runs ``model(*args)`` under ``torch.inference_mode`` with the
    compiled thread count set for PyTorch and for the backend.

    Attributes
    ----------
    model : the rewritten copy (sparse layers in place of the pruned modules).
    plan : {matrix: {module, kind, format, requested, reason, shape, sparsity, values, bytes,
        dense_bytes}}; ``reason`` says why a matrix runs dense when it does.
    engine, values, threads, threads_effective : what it was compiled for.
    """

    def __init__(self, model: nn.Module, plan: dict, backend: Backend, values: str, threads: int):
        super().__init__()
        self.model = model
        self.plan = plan
        self.backend = backend
        self.engine = backend.name
        self.values = values
        self.threads = threads
        self.threads_effective = backend.threads_effective(threads)
        # PyTorch's fused transformer/attention paths read dense weights (linear1.weight,
        # out_proj.weight) that sparse layers do not have
        self.no_fastpath = any(isinstance(m, SPARSE_LAYERS) for m in model.modules()) and any(
            isinstance(m, (nn.TransformerEncoder, nn.TransformerEncoderLayer,
                           nn.TransformerDecoderLayer, *ATTENTION_TYPES))
            for m in model.modules())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        self.backend.set_threads(self.threads)
        with torch.inference_mode(), mha_fastpath(not self.no_fastpath):
            return self.model(*args, **kwargs)

    def sparse_layers(self) -> list[str]:
        """Names of the modules that run on a sparse op."""
        return [n for n, m in self.model.named_modules() if isinstance(m, SPARSE_LAYERS)]

    def nbytes(self) -> dict[str, int]:
        """Bytes held in memory: ``ops`` (arrays of the sparse layers' operators, biases
        included), ``torch`` (parameters and buffers of everything left to PyTorch), total."""
        ops = 0
        for m in self.model.modules():
            if isinstance(m, (SparseLinear, SparseConv)):
                ops += m.op.nbytes()
            elif isinstance(m, (SparseRNN, SparseMultiheadAttention)):
                ops += sum(o.nbytes() for o in m.ops.values())
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        dense = sum(t.numel() * t.element_size() for t in tensors)
        return {"ops": int(ops), "torch": int(dense), "total": int(ops + dense)}

    def summary(self) -> dict[str, Any]:
        """Counts of matrices by format and the reasons matrices run dense."""
        by_format: dict[str, int] = {}
        for p in self.plan.values():
            by_format[p["format"]] = by_format.get(p["format"], 0) + 1
        dense = {n: p["reason"] for n, p in self.plan.items()
                 if p["format"] == "dense" and p["reason"] != "requested"}
        return {"engine": self.engine, "values": self.values, "threads": self.threads,
                "threads_effective": self.threads_effective, "matrices": by_format,
                "dense_reasons": dense, "nbytes": self.nbytes()}


def compile(model: nn.Module, plan: Any = "csr", *, values: str = "fp32", threads: int = 1,
            fallback: str = "error", keep_smaller: bool = True, backend: Backend | None = None,
            **format_opts: Any) -> CompiledModel:
    """A copy of ``model`` whose pruned layers run on the formats of ``plan``.

    Parameters
    ----------
    model : a pruned (or dense) torch model; it is deep-copied and never changed.
    plan : one format name for every matrix, or ``{matrix | parameter | module: format}``
        (unlisted matrices stay dense); ``"dense"`` leaves everything to PyTorch.
    values : ``fp32`` (exact up to float32 summation order), ``fp16`` or ``int8`` (per-row
        scales; weight-only quantisation, activations stay float32).
    threads : threads for the sparse products and for PyTorch, in [1, cores].
    fallback : ``"error"`` (a pruned layer the format cannot serve raises BadInputError
        naming it) or ``"dense"`` (it stays dense PyTorch; the plan says why).
    keep_smaller : keep dense the matrices whose encoding would be larger than dense.
    backend : what runs the products (default: prunebench's numba kernels).
    **format_opts : ``block=(r, c)``, ``n=``, ``m=``, ``slice_height=``.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.mul_(torch.rand(8, 8) > 0.8)
    >>> fast = compile(net, "csr")
    >>> x = torch.randn(2, 8)
    >>> bool(torch.allclose(fast(x), net(x), atol=1e-6))
    True
    """
    backend = backend or NATIVE
    threads = check_threads(threads, backend.max_threads())
    if not isinstance(model, nn.Module):
        raise BadInputError(f"model should be a torch.nn.Module, got {type(model).__name__}")
    plan_rows, encoded = plan_model(model, plan, values=values, fallback=fallback,
                                    keep_smaller=keep_smaller, backend=backend, **format_opts)
    work = copy.deepcopy(model).eval()
    # matrix names before any module is replaced: a tied weight's first user may go first
    names = {mname: _matrix_names(work, mname) for mname in prunable_layers(work)}
    sparse = {mname for mname in names
              if any(plan_rows[n]["format"] != "dense" for n in names[mname])}
    # an attention module whose out_proj runs sparse cannot keep its fused forward, which
    # reads out_proj.weight: it is replaced too (parents first, so out_proj is its child)
    sparse |= {mname for mname, m in work.named_modules() if isinstance(m, ATTENTION_TYPES)
               and (f"{mname}.out_proj" if mname else "out_proj") in sparse}
    for mname in [n for n in names if n in sparse]:
        module = work.get_submodule(mname)
        new: nn.Module
        if isinstance(module, RNN_TYPES):
            ops = _rnn_ops(work, mname, names[mname], plan_rows, encoded, backend, threads,
                           format_opts, values)
            new = SparseRNN(module, ops)
        elif isinstance(module, ATTENTION_TYPES):
            new = SparseMultiheadAttention(
                module, _attention_ops(module, names[mname], encoded, backend, threads))
        else:
            op = backend.make_op(encoded[names[mname][0]], _np(_bias(module, "bias")), threads)
            # layer_kind said which: a Linear, else a Conv1d/Conv2d (why_dense_only checked it)
            new = (SparseLinear(op) if layer_kind(module) == "linear"
                   else SparseConv(op, cast("nn.Conv1d | nn.Conv2d", module)))
        work = _replace(work, mname, new)
    return CompiledModel(work, plan_rows, backend, values, threads)
