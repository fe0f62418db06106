"""``openvino``: the whole model compiled by OpenVINO's CPU plugin, pruned layers inside it.

Formats
-------
``dense``
    OpenVINO's own kernels for every layer (oneDNN, its graph fusions and layouts).
``csr``
    every pruned ``nn.Linear`` and 1x1 ``nn.Conv1d``/``nn.Conv2d`` (groups 1, no padding) runs
    as prunebench's ``SparseMatMul`` custom operation (:mod:`prunebench.engines.ov_ext`, C++)
    on its CSR arrays, *inside* the compiled graph: no trip through PyTorch or Python per
    layer, threads from OpenVINO's own pool. Before encoding, a BatchNorm that follows a
    convolution is folded into it, and a ReLU/ReLU6 that follows a sparse layer is fused into
    the operation. Depthwise 3x3 convolutions beside sparse layers run as ``DepthwiseConv``
    on the same planar layout; an inverted residual block (sparse 1x1 expansion, depthwise,
    sparse 1x1 projection) runs as one ``InvertedBlock`` and an expansion with its depthwise
    convolution as one ``ExpandDepthwise`` (``depthwise=`` chooses: :data:`DEPTHWISE`).
    A pruned ``nn.LSTM`` (unidirectional, no projection) is written out as its
    products and gates (:class:`UnrolledLSTM`): each matrix whose four gates are all pruned
    runs as one operation, the recurrent one once per step. Other pruned layers (3x3 and
    depthwise convolutions, GRUs, bidirectional LSTMs) run OpenVINO's dense kernels
    (``fallback="dense"``) or raise (``fallback="error"``).

Values: ``fp32`` sets ``INFERENCE_PRECISION_HINT=f32``; ``bf16`` is OpenVINO's default on
CPUs with bf16 units (this one), which computes in bfloat16 without saying so: lossy, verified
with the bf16 tolerance and stored apart from fp32 rows. ``csr`` runs fp32 only.

The model is traced (``openvino.convert_model``) on ``example_input`` or on the first input
the callable gets, and compiled with a static shape per input shape it is called with (the CPU
plugin runs dynamic shapes with shape inference and reallocation on every call).
"""
from __future__ import annotations

import copy
import itertools
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import BadInputError, PrunebenchError
from ..formats import Format
from ..pruning.targets import hf_conv1d_type, is_transposed_linear
from ..runtime.compile import Backend, mha_fastpath, check_threads, plan_model
from ..runtime.layers import MatrixOp
from .base import ENGINES, Engine
from .ov_modules import (ExpandDepthwise, InvertedBlock, PlanarDepthwise, UnrolledLSTM,
                         apply_act, bias_array, depthwise_conv, dw_weights, fold_batchnorm,
                         fuse_activation, is_planar_depthwise, is_pointwise, lstm_problem,
                         sequential_chains, set_module, why_not_sparse)

#: OpenVINO's INFERENCE_PRECISION_HINT per value type
PRECISION = {"fp32": "f32", "bf16": "bf16"}
OP_TYPE = "prunebench.SparseMatMul"
DW_OP_TYPE = "prunebench.DepthwiseConv"
FUSED_OP_TYPE = "prunebench.ExpandDepthwise"
#: ``depthwise=`` choices: "block" runs an inverted residual block's sparse 1x1 expansion,
#: depthwise convolution and sparse 1x1 projection as one ``InvertedBlock`` operation (where
#: the projection is not sparse, as "fused"), "fused" the expansion and the depthwise
#: convolution as one ``ExpandDepthwise`` operation (other depthwise layers as "planar"),
#: "planar" each depthwise convolution as ``DepthwiseConv``, "openvino" on OpenVINO's kernels
DEPTHWISE = ("block", "fused", "planar", "openvino")
_KEYS = itertools.count()


class OpenVinoBackend(Backend):
    """The formats/values the custom operation runs (planning and encoding only: the
    products run inside OpenVINO, not through :meth:`make_op`)."""

    name: ClassVar[str] = "openvino"
    formats: ClassVar[tuple[str, ...]] = ("csr",)
    values: ClassVar[tuple[str, ...]] = ("fp32",)

    def make_op(self, fmt: Format, bias: np.ndarray | None,
                threads: int) -> MatrixOp:  # pragma: no cover - never called
        raise PrunebenchError("the openvino backend runs its products inside OpenVINO")


OPENVINO = OpenVinoBackend()


def _csr_arrays(fmt: Format, index: Any = None) -> list[np.ndarray]:
    """indptr, indices (as stored, or as ``index``) and float32 data of a csr layer."""
    a = fmt.arrays()
    return [np.ascontiguousarray(a["indptr"], index), np.ascontiguousarray(a["indices"], index),
            np.ascontiguousarray(a["data"], dtype=np.float32)]


class OpenVinoModel:
    """The callable ``openvino`` compiles to: ``run(x) -> torch.Tensor``.

    Attributes: ``plan`` (per matrix: format and reason, as :func:`runtime.compile.plan_model`),
    ``sparse_layers``, ``precision`` (OpenVINO's hint), ``threads_effective``; after the first
    call or with ``example_input``: ``compiled`` (the ``openvino.CompiledModel``).
    """

    def __init__(self, model: nn.Module, plan: Any, values: str, threads: int,
                 fallback: str, keep_smaller: bool, example_input: torch.Tensor | None,
                 depthwise: str = "block"):
        self.source_model = model.eval()
        self.values, self.threads = values, threads
        self.threads_effective = threads
        self.precision = PRECISION[values]
        self.plan: dict[str, dict] = {}
        self.sparse_layers: list[str] = []
        # openvino's Model, CompiledModel and InferRequest (openvino is imported when needed)
        self.compiled: Any = None
        self.request: Any = None
        self._converted: Any = None
        self._by_shape: dict[tuple, tuple] = {}
        self._layers: dict[int, tuple[Format, np.ndarray | None, int, int]] = {}
        self._seen: set[int] = set()   # keys of the sparse layers the trace called
        self._names: dict[int, str] = {}   # key -> module name of each sparse layer
        self._dw: dict[int, tuple[np.ndarray, np.ndarray, int, int]] = {}
        self._fused: dict[int, tuple] = {}
        self.depthwise = depthwise
        self._work = self.source_model
        if plan != "dense":
            self._prepare(plan, fallback, keep_smaller)
        if example_input is not None:
            self._build(example_input[:1])

    # -------------------------------------------------------------- planning
    def _prepare(self, plan: Any, fallback: str, keep_smaller: bool) -> None:
        work = fold_batchnorm(copy.deepcopy(self.source_model).eval())
        rows, encoded = plan_model(work, plan, values="fp32", fallback=fallback,
                                   keep_smaller=keep_smaller, backend=OPENVINO)
        sparse_lstm = self._unroll_lstms(work, rows, encoded, fallback)
        for name, row in rows.items():
            if name not in encoded or name in sparse_lstm:
                continue
            users = row.get("modules", [row["module"]])     # a tied weight: every user
            problem = next((p for p in (why_not_sparse(work, m) for m in users) if p), None)
            if problem:
                if fallback == "error":
                    raise BadInputError(f"layer {name}: {problem}; cannot run format "
                                        f"{row['format']!r} on engine openvino (fallback='dense' "
                                        "/ --fallback dense keeps it dense)")
                row.update(format="dense", values="fp32", bytes=row["dense_bytes"],
                           reason=f"{problem}; runs OpenVINO's dense kernels (fallback)")
                del encoded[name]
        self.plan = rows
        sparse = {m: encoded[n] for n in encoded if n not in sparse_lstm
                  for m in rows[n].get("modules", [rows[n]["module"]])}
        sparse.update(sparse_lstm.get("", {}))
        # depthwise 3x3 convolutions beside sparse layers: on OpenVINO's kernels they run in
        # its blocked layout, and each sparse operation next to one then pays two Reorders
        dws = [n for n, m in work.named_modules() if is_planar_depthwise(m)] \
            if sparse and self.depthwise != "openvino" else []
        acts = fuse_activation(work, set(sparse) | set(dws))
        self.sparse_layers = sorted(sparse)
        if self.depthwise in ("block", "fused"):
            self._fuse_expansions(work, sparse, dws, acts, whole=self.depthwise == "block")
        for mname in dws:
            module = work.get_submodule(mname)
            if not is_planar_depthwise(module):   # (dws holds only these)
                continue
            key = next(_KEYS)
            self._dw[key] = (dw_weights(module), bias_array(module), module.stride[0],
                             acts.get(mname, 0))
            planar = PlanarDepthwise(module)
            planar._pb_dw = key
            set_module(work, mname, planar)
        for mname, fmt in sparse.items():
            module = work.get_submodule(mname)
            key = next(_KEYS)
            b = module.bias
            bias = b.detach().float().numpy().copy() if isinstance(b, torch.Tensor) else None
            mode = 0 if isinstance(module, nn.Linear) or is_transposed_linear(module) else 1
            strides = tuple(module.stride) if isinstance(module, (nn.Conv1d, nn.Conv2d)) else ()
            stride = None if mode == 0 or all(v == 1 for v in strides) else strides
            # the trace's marker (nn.Module's __setattr__ is typed for tensors and modules)
            setattr(module, "_pb_ov", (key, acts.get(mname, 0), stride))
            self._layers[key] = (fmt, bias, mode, acts.get(mname, 0))
            self._names[key] = mname
        self._work = work

    def _fuse_expansions(self, work: nn.Module, sparse: dict, dws: list, acts: dict,
                         whole: bool) -> None:
        """Each sparse pointwise convolution whose output only feeds a planar depthwise one
        (an inverted residual block's expansion) becomes one :class:`ExpandDepthwise` with it,
        or with ``whole`` and a sparse pointwise projection after them, one
        :class:`InvertedBlock` with both; the layers leave ``sparse`` and ``dws``."""
        tied = {m for n in self.plan for m in self.plan[n].get("modules", ())
                if len(self.plan[n].get("modules", ())) > 1}
        for chain in list(sequential_chains(work)):
            for i, ((a, ma), (b, mb)) in enumerate(zip(chain, chain[1:])):
                if a not in sparse or b not in dws or a in tied or not is_pointwise(ma) \
                        or not is_planar_depthwise(mb) or ma.out_channels != mb.in_channels:
                    continue
                c, mc = chain[i + 2] if i + 2 < len(chain) else ("", None)
                if not (whole and c in sparse and c not in tied and is_pointwise(mc)
                        and mc.in_channels == mb.out_channels):
                    mc = None   # no sparse pointwise projection to take in
                fmt = sparse.pop(a)
                dws.remove(b)
                key = next(_KEYS)
                entry: tuple[Any, ...] = (fmt, bias_array(ma), acts.get(a, 0), dw_weights(mb),
                                          bias_array(mb), mb.stride[0], acts.get(b, 0))
                block = mc is not None
                fused: ExpandDepthwise
                if mc is not None:   # the projection after it too: the whole block as one
                    entry += (sparse.pop(c), bias_array(mc), acts.get(c, 0))
                    fused = InvertedBlock(ma, mb, mc, acts.get(a, 0), acts.get(b, 0),
                                          acts.get(c, 0))
                    set_module(work, c, nn.Identity())
                else:
                    fused = ExpandDepthwise(ma, mb, acts.get(a, 0), acts.get(b, 0))
                self._fused[key] = entry
                self._names[key] = "+".join([a, b] + ([c] if block else []))
                fused._pb_fused = key
                set_module(work, a, fused)
                set_module(work, b, nn.Identity())

    @staticmethod
    def _unroll_lstms(work: nn.Module, rows: dict, encoded: dict, fallback: str) -> dict:
        """Replace each ``nn.LSTM`` with a pruned matrix by an :class:`UnrolledLSTM` in
        ``work``. A matrix's four gates run as one operation: when all four are encoded it is
        encoded whole (csr) and runs sparse, else it runs dense and the plan says why.
        Returns {gate row name: True for each row handled here, "": {module: Format}}."""
        from ..formats import encode

        handled: dict[str, Any] = {"": {}}
        lstms = {row["module"]: m for name, row in rows.items()
                 if name in encoded and isinstance(m := work.get_submodule(row["module"]), nn.LSTM)}
        for mname, lstm in lstms.items():
            problem = lstm_problem(lstm)
            if problem:   # the generic loop below applies the fallback rules to its rows
                continue
            unrolled = UnrolledLSTM(lstm)
            for k in range(lstm.num_layers):
                for kind in ("ih", "hh"):
                    attr = f"weight_{kind}_l{k}"
                    gate_rows = [n for n in rows if rows[n]["module"] == mname
                                 and n.startswith(f"{mname}.{attr}[")]
                    mine = [n for n in gate_rows if n in encoded]
                    for n in mine:
                        handled[n] = True
                    if not mine:
                        continue
                    if len(mine) == len(gate_rows):
                        # the LSTM's matrix, which UnrolledLSTM's Linear holds a copy of
                        W = np.ascontiguousarray(getattr(lstm, attr).detach().float().numpy())
                        handled[""][f"{mname}.{kind}.{k}"] = encode(W, "csr", values="fp32")
                        continue
                    if fallback == "error":
                        raise BadInputError(
                            f"layer {mname}.{attr}: the sparse operation runs an LSTM matrix's "
                            "four gates as one; plan all of them csr (or fallback='dense')")
                    for n in mine:
                        del encoded[n]
                        rows[n].update(format="dense", values="fp32", bytes=rows[n]["dense_bytes"],
                                       reason="an LSTM matrix's gates run as one operation: "
                                              "some gates of this one stay dense, so all do")
            set_module(work, mname, unrolled)
        return handled

    # -------------------------------------------------------------- building
    def _extensions(self) -> list:
        from openvino.frontend.pytorch import ConversionExtension, ModuleExtension

        from .ov_ext import library

        if not (self._layers or self._fused):
            return []
        factory = _node_factory(str(library()))
        layers, dws, fused = self._layers, self._dw, self._fused

        def dw_evaluate(module, x, key):
            w, b, stride, act = dws[int(key)]
            return apply_act(depthwise_conv(x, w, b, stride), act)

        def dw_convert(module, target_op, x):
            return target_op(x.clone(), torch.tensor(module._pb_dw, dtype=torch.int64))

        def dw_to_openvino(ctx):
            import openvino as ov

            w, b, stride, act = dws[int(ctx.get_values_from_const_input(1))]
            consts = [ov.op.Constant(np.ascontiguousarray(a, np.float32)).output(0) for a in (w, b)]
            node = factory.create("DepthwiseConv", [ctx.get_input(0), *consts],
                                  {"stride": stride, "act": act})
            return node.outputs()

        def pointwise(x, fmt, bias):
            W = torch.from_numpy(fmt.to_dense().astype(np.float32))
            return torch.nn.functional.conv2d(x, W[:, :, None, None],
                                              torch.from_numpy(bias) if bias.size else None)

        def fused_evaluate(module, x, key):
            fmt, bias, act_e, w, b, stride, act, *project = fused[int(key)]
            y = apply_act(depthwise_conv(apply_act(pointwise(x, fmt, bias), act_e), w, b, stride),
                           act)
            if project:
                y = apply_act(pointwise(y, project[0], project[1]), project[2])
            return y

        def fused_convert(module, target_op, x):
            seen.add(module._pb_fused)
            return target_op(x.clone(), torch.tensor(module._pb_fused, dtype=torch.int64))

        def fused_to_openvino(ctx):
            import openvino as ov

            fmt, bias, act_e, w, b, stride, act, *project = \
                fused[int(ctx.get_values_from_const_input(1))]
            attrs = {"stride": stride, "act_e": act_e, "act": act}
            if project:   # InvertedBlock: int32 indptr and indices
                arrays = [*_csr_arrays(fmt, np.int32), bias, w, b,
                          *_csr_arrays(project[0], np.int32), project[1]]
                op, attrs["act_p"] = "InvertedBlock", project[2]
            else:
                arrays = [*_csr_arrays(fmt), bias, w, b]
                op = "ExpandDepthwise"
            consts = [ov.op.Constant(a).output(0) for a in arrays]
            return factory.create(op, [ctx.get_input(0), *consts], attrs).outputs()

        def evaluate(module, x, key):
            # the output for the trace, in NumPy: the tracer must not see the parameters
            fmt, bias, mode, act = layers[int(key)]
            W = fmt.to_dense().astype(np.float32)
            xn = x.detach().numpy()   # already strided by convert()
            y = xn @ W.T if mode == 0 else np.einsum("oc,nc...->no...", W, xn)
            if bias is not None:
                y = y + (bias if mode == 0 else bias.reshape((-1,) + (1,) * (y.ndim - 2)))
            return apply_act(torch.from_numpy(np.ascontiguousarray(y, np.float32)), act)

        seen = self._seen

        def convert(module, target_op, x):
            key, _, stride = module._pb_ov
            seen.add(key)
            if stride:
                x = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]
            # a fresh value: OpenVINO's PyTorch frontend crashed (SIGSEGV) converting an input
            # that feeds both the operation and a residual add
            return target_op(x.clone(), torch.tensor(key, dtype=torch.int64))

        def to_openvino(ctx):
            import openvino as ov

            fmt, bias, mode, act = layers[int(ctx.get_values_from_const_input(1))]
            arrays = [*_csr_arrays(fmt), np.zeros(0, np.float32) if bias is None else bias]
            consts = [ov.op.Constant(a).output(0) for a in arrays]
            node = factory.create("SparseMatMul", [ctx.get_input(0), *consts],
                                  {"mode": mode, "act": act})
            return node.outputs()

        def is_ours(module):
            return hasattr(module, "_pb_ov")

        return [ModuleExtension(nn.Linear, OP_TYPE, evaluate=evaluate, convert=convert,
                                condition=is_ours),
                ModuleExtension(nn.Conv1d, OP_TYPE, evaluate=evaluate, convert=convert,
                                condition=is_ours),
                ModuleExtension(nn.Conv2d, OP_TYPE, evaluate=evaluate, convert=convert,
                                condition=is_ours),
                ModuleExtension(PlanarDepthwise, DW_OP_TYPE, evaluate=dw_evaluate,
                                convert=dw_convert),
                ModuleExtension(ExpandDepthwise, FUSED_OP_TYPE, evaluate=fused_evaluate,
                                convert=fused_convert),
                ModuleExtension(InvertedBlock, FUSED_OP_TYPE, evaluate=fused_evaluate,
                                convert=fused_convert),
                ConversionExtension(OP_TYPE, to_openvino),
                ConversionExtension(DW_OP_TYPE, dw_to_openvino),
                ConversionExtension(FUSED_OP_TYPE, fused_to_openvino)] + (
            # transformers' Conv1D (GPT-2): encoded as its [out, in] transpose, so mode 0
            [ModuleExtension(hf_conv1d_type(), OP_TYPE, evaluate=evaluate, convert=convert,
                             condition=is_ours)] if hf_conv1d_type() is not None else [])

    def _build(self, example: torch.Tensor) -> None:
        """Convert once (dynamic shapes), then compile for ``example``'s shape."""
        import openvino as ov

        if self._converted is None:
            try:
                # PyTorch's fused encoder-layer fast path reads linear1.weight etc. without
                # calling the modules: the sparse operations would be skipped
                with torch.no_grad(), warnings.catch_warnings(), mha_fastpath(not self._layers):
                    warnings.simplefilter("ignore")     # the tracer's warnings: not the user's
                    self._converted = ov.convert_model(self._work, example_input=example[:1],
                                                       extension=self._extensions() or None)
            except PrunebenchError:
                raise
            except Exception as e:  # noqa: BLE001 - the converter's errors are many and varied
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                text = str(e)
                if "Summary:" in text:     # the operations it could not take, on one line
                    msg = "; ".join(ln.strip("- ") for ln in
                                    text.split("Summary:", 1)[1].splitlines() if ln.strip())
                raise PrunebenchError(f"openvino cannot convert {type(self.source_model).__name__}"
                                      f": {msg}") from None
            # every sparse layer the trace called became a SparseMatMul; one whose output the
            # model never uses (BERT's pooler under last_hidden_state) is then dropped from the
            # graph, which is harmless: only a layer never called would run dense
            missing = [n for k, n in self._names.items() if k not in self._seen]
            if missing:
                raise PrunebenchError(
                    f"openvino: {len(missing)} of the {len(self._names)} sparse layers "
                    f"({', '.join(missing)}) are not called as modules by "
                    f"{type(self.source_model).__name__}.forward, so the traced graph would run "
                    "them dense; use fallback with a plan that keeps them dense")
        # a static shape per input shape: OpenVINO's CPU plugin runs a dynamic-shape graph with
        # shape inference and reallocation on every call
        shape = tuple(example.shape)
        ovm = self._converted
        ovm.reshape({ovm.inputs[0]: ov.PartialShape(list(shape))})
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1}
        self.compiled = _core().compile_model(ovm, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self._by_shape[shape] = (self.compiled, self.request)
        self._single = len(self.compiled.outputs) == 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        shape = tuple(x.shape)
        if shape not in self._by_shape:
            self._build(x)
        self.compiled, self.request = self._by_shape[shape]
        out = self.request.infer({0: x.detach().numpy()}, share_inputs=True)
        if self._single:
            return torch.from_numpy(out[0].copy())
        return tuple(torch.from_numpy(out[i].copy()) for i in range(len(out)))

    def op_counts(self) -> dict[str, int]:
        """How many operations of each kind the CPU plugin runs (``Reference`` = ours)."""
        if self.compiled is None:
            raise PrunebenchError("openvino model not built yet: call it once first")
        counts: dict[str, int] = {}
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            t = op.get_rt_info()["layerType"].astype(str)
            counts[t] = counts.get(t, 0) + 1
        return counts


_CORE = None
_FACTORY: dict[str, Any] = {}


def _core():
    global _CORE
    if _CORE is None:
        import openvino as ov

        _CORE = ov.Core()
    return _CORE


def _node_factory(lib: str):
    if lib not in _FACTORY:
        from openvino.utils.node_factory import NodeFactory

        nf = NodeFactory()
        nf.add_extension(lib)
        _core().add_extension(lib)
        _FACTORY[lib] = nf
    return _FACTORY[lib]


class OpenVinoEngine(Engine):
    name = "openvino"
    formats = ("dense", "csr")
    values = ("fp32", "bf16")
    rnn = ("pruned LSTMs as their products (sparse operations) and gates; GRUs on OpenVINO's "
           "own sequence operations (dense)")

    def compile(self, model: nn.Module, format: Any = "dense", *, values: str = "fp32",
                threads: int = 1, example_input: torch.Tensor | None = None,
                fallback: str = "error", keep_smaller: bool = True,
                depthwise: str = "block", **options: Any) -> OpenVinoModel:
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise BadInputError("engine openvino needs the openvino package: "
                                "pip install -c constraints.txt openvino") from None
        if values not in self.values:
            raise BadInputError(f"engine openvino runs values {', '.join(self.values)}; "
                                f"got values={values!r}")
        if format != "dense" and values != "fp32":
            raise BadInputError(f"engine openvino runs sparse formats with fp32 values only; "
                                f"got format {format!r} with values {values!r}")
        threads = check_threads(threads)
        if depthwise not in DEPTHWISE:
            raise BadInputError(f"depthwise={depthwise!r} should be 'block' (a sparse inverted "
                                "residual block as one operation), 'fused' (a sparse expansion "
                                "and its depthwise convolution as one), 'planar' (prunebench's "
                                "DepthwiseConv beside sparse layers) or 'openvino' (its own)")
        return OpenVinoModel(model, format, values, threads, fallback, keep_smaller,
                             example_input, depthwise)


ENGINES.add("openvino", OpenVinoEngine())
