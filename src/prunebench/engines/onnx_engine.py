"""``onnxruntime``: the pruned model exported to ONNX (TorchScript exporter, dynamic batch)
and run by ONNX Runtime on the CPU.

Formats
-------
``dense``
    every initializer dense: ONNX Runtime's own dense kernels (MLAS GEMM, its GRU/LSTM ops).
``coo``
    pruned initializers stored as ONNX *sparse initializers* (``GraphProto.sparse_initializer``:
    float32 values + int64 linearised indices, i.e. COO at 12 bytes per nonzero), which makes
    the ``.onnx`` file smaller above 2/3 sparsity. ONNX Runtime converts sparse initializers
    to dense tensors when it loads the graph (there is no CPU kernel that multiplies by a
    sparse initializer), so run time and memory are those of ``dense``: the format changes the
    file size only. The compiled callable reports both sizes (``file_bytes``,
    ``dense_file_bytes``).

An initializer becomes sparse when it has zeros and its COO encoding is smaller than dense
(``keep_smaller``; with ``keep_smaller=False`` every initializer with a zero does).
Values are fp32. Threads: ``SessionOptions.intra_op_num_threads`` (one inter-op thread,
sequential execution).

The export traces the model on ``example_input`` (or on the first input it is called with).
"""
from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import BadInputError, PrunebenchError
from .base import ENGINES, Engine

OPSET = 17


class ProjectedLSTM(nn.Module):
    """An ``nn.LSTM`` with ``proj_size`` written as products and gates over the time steps,
    which the exporter traces (ONNX's LSTM operator has no projection): the same parameters
    (``self.lstm``'s), the same outputs, the time loop unrolled at the traced length."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        lstm = self.lstm
        if not isinstance(x, torch.Tensor):
            raise PrunebenchError("onnx export: an LSTM with projections takes a tensor here, "
                                  "not a PackedSequence")
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif lstm.batch_first:
            x = x.transpose(0, 1)
        dirs = 2 if lstm.bidirectional else 1
        if hx is None:
            zeros = x.new_zeros(lstm.num_layers * dirs, x.shape[1], 1)
            h0 = zeros.expand(-1, -1, lstm.proj_size)
            c0 = zeros.expand(-1, -1, lstm.hidden_size)
        else:
            h0, c0 = (t.unsqueeze(1) if unbatched else t for t in hx)
        hs, cs = [], []
        for layer in range(lstm.num_layers):
            outs = []
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(lstm, "weight_ih" + sfx), getattr(lstm, "weight_hh" + sfx)
                w_hr = getattr(lstm, "weight_hr" + sfx)
                b = (getattr(lstm, "bias_ih" + sfx) + getattr(lstm, "bias_hh" + sfx)
                     if lstm.bias else None)
                h, c = h0[layer * dirs + d], c0[layer * dirs + d]
                steps = range(x.shape[0] - 1, -1, -1) if d else range(x.shape[0])
                ys = {}
                for t in steps:
                    g = x[t] @ w_ih.t() + h @ w_hh.t()
                    g = g + b if b is not None else g
                    i, f, gg, o = g.chunk(4, dim=-1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                    h = (torch.sigmoid(o) * torch.tanh(c)) @ w_hr.t()
                    ys[t] = h
                outs.append(torch.stack([ys[t] for t in range(x.shape[0])]))
                hs.append(h)
                cs.append(c)
            x = torch.cat(outs, dim=-1)
        hn, cn = torch.stack(hs), torch.stack(cs)
        if unbatched:
            return x.squeeze(1), (hn.squeeze(1), cn.squeeze(1))
        return (x.transpose(0, 1) if lstm.batch_first else x), (hn, cn)


def _exportable(model: nn.Module) -> nn.Module:
    """``model``, or a copy whose LSTMs with projections are :class:`ProjectedLSTM`."""
    import copy

    names = [n for n, m in model.named_modules() if isinstance(m, nn.LSTM) and m.proj_size]
    if not names:
        return model
    if isinstance(model, nn.LSTM):      # the model is the LSTM (names == [""])
        return ProjectedLSTM(model)
    model = copy.deepcopy(model)
    for name in names:
        parent, _, attr = name.rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        setattr(holder, attr, ProjectedLSTM(getattr(holder, attr)))
    return model


def export_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """The ONNX bytes of ``model`` traced on ``example``, batch dimension dynamic."""
    buf = io.BytesIO()
    model = _exportable(model.eval())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # (torch's hint for f omits the file objects the TorchScript exporter writes to)
            torch.onnx.export(model, (example,), buf,  # type: ignore[arg-type]
                              dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              do_constant_folding=True)
        except Exception as e:  # noqa: BLE001 - exporter errors are many and varied
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            msg = msg.split(" [Caused by the value", 1)[0][:300]    # not the traced graph
            raise PrunebenchError(f"onnx export of {type(model).__name__} failed: {msg}") from None
    return buf.getvalue()


def sparsify_initializers(data: bytes, keep_smaller: bool = True) -> tuple[bytes, list[dict]]:
    """Move float32 initializers with zeros into ``sparse_initializer`` (COO, int64 linear
    indices). Returns the new ONNX bytes and one row per initializer considered."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(data)
    graph = proto.graph
    keep, rows = [], []
    for init in graph.initializer:
        a = numpy_helper.to_array(init)
        nz = int(np.count_nonzero(a))
        row = {"name": init.name, "shape": list(a.shape), "sparsity": 1 - nz / a.size if a.size else 0.0,
               "dense_bytes": int(a.nbytes), "sparse_bytes": nz * (a.itemsize + 8), "sparse": False}
        smaller = row["sparse_bytes"] < row["dense_bytes"]
        if a.dtype == np.float32 and a.ndim >= 1 and nz < a.size and (smaller or not keep_smaller):
            flat = a.reshape(-1)
            idx = np.flatnonzero(flat).astype(np.int64)
            values = numpy_helper.from_array(flat[idx].astype(np.float32), init.name)
            indices = numpy_helper.from_array(idx, init.name + "__indices")
            graph.sparse_initializer.append(onnx.helper.make_sparse_tensor(values, indices, list(a.shape)))
            row["sparse"] = True
        else:
            keep.append(init)
        rows.append(row)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return proto.SerializeToString(), rows


class OrtModel:
    """The callable ``onnxruntime`` compiles to: ``run(x) -> torch.Tensor``.

    Attributes (after the export, i.e. after construction with an example input or after the
    first call): ``file_bytes`` (the ``.onnx`` file as run), ``dense_file_bytes`` (the same
    model with dense initializers), ``plan`` (one row per initializer), ``onnx_bytes``.
    """

    def __init__(self, model: nn.Module, sparse: bool, threads: int, keep_smaller: bool = True,
                 example_input: torch.Tensor | None = None):
        # not called ``model``: a profiler that hooks "the module behind the callable" must not
        # hook this one, which ONNX Runtime never calls
        self.source_model = model.eval()
        self.sparse, self.threads, self.keep_smaller = sparse, threads, keep_smaller
        self.threads_effective = threads
        self.session: Any = None   # the onnxruntime.InferenceSession, after the export
        self.plan: dict[str, dict] = {}
        self.file_bytes: int | None = None
        self.dense_file_bytes: int | None = None
        self.onnx_bytes = b""
        self.note = ("sparse initializers are densified by ONNX Runtime at load: run time and "
                     "memory are dense" if sparse else "")
        if example_input is not None:
            self._build(example_input[:1])

    def _build(self, example: torch.Tensor) -> None:
        import onnxruntime as ort

        self.traced_shape = tuple(example.shape)
        data = export_onnx(self.source_model, example)
        self.dense_file_bytes = len(data)
        if self.sparse:
            data, rows = sparsify_initializers(data, self.keep_smaller)
            self.plan = {r["name"]: r for r in rows}
        self.onnx_bytes = data
        self.file_bytes = len(data)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PrunebenchError(f"onnxruntime cannot load the exported model: {msg}") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            self._build(x[:1])
        # token ids stay integers; every other input runs as float32
        xn = np.ascontiguousarray(x.detach().numpy(),
                                  dtype=np.float32 if x.is_floating_point() else None)
        try:
            return torch.from_numpy(self.session.run(None, {self.input_name: xn})[0])
        except Exception as e:  # noqa: BLE001 - ONNX Runtime raises its own Fail types
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PrunebenchError(
                f"onnxruntime cannot run input shape {tuple(x.shape)} on the graph exported for "
                f"{tuple(self.traced_shape)}: only dim 0 is dynamic (a batch-first model is "
                f"needed; a sequence-first one bakes its batch size in): {msg[:200]}") from None


class GraphRun:
    """What ``onnxruntime`` compiles a :class:`~prunebench.runtime.graphfile.GraphModel` to:
    its own graph (no export) on a session with ``threads`` threads."""

    def __init__(self, graph: Any, sparse: bool, threads: int, keep_smaller: bool = True):
        self.graph = graph.with_threads(threads)
        self.threads_effective = threads
        self.dense_file_bytes = len(graph.onnx_bytes)
        self.plan: dict[str, dict] = {}
        self.onnx_bytes = graph.onnx_bytes
        if sparse:
            self.onnx_bytes, rows = sparsify_initializers(graph.onnx_bytes, keep_smaller)
            self.plan = {r["name"]: r for r in rows}
        self.file_bytes = len(self.onnx_bytes)
        self.note = ("sparse initializers are densified by ONNX Runtime at load: run time and "
                     "memory are dense" if sparse else "")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)


class OnnxEngine(Engine):
    name = "onnxruntime"
    formats = ("dense", "coo")
    values = ("fp32",)
    rnn = "ONNX GRU/LSTM operators (dense; the exporter maps nn.GRU/nn.LSTM to them)"

    def compile(self, model: nn.Module, format: Any = "dense", *, values: str = "fp32",
                threads: int = 1, example_input: torch.Tensor | None = None,
                keep_smaller: bool = True, **options: Any) -> OrtModel | GraphRun:
        from ..runtime.compile import check_threads

        if format not in self.formats:
            raise BadInputError(f"engine onnxruntime runs formats {', '.join(self.formats)} "
                                f"(coo = ONNX sparse initializers); got {format!r}")
        if values not in self.values:
            raise BadInputError(f"engine onnxruntime runs fp32 values; got values={values!r}")
        threads = check_threads(threads)
        if getattr(model, "prunebench_graph", False):  # already a graph: run it as it is
            return GraphRun(model, format == "coo", threads, keep_smaller)
        return OrtModel(model, format == "coo", threads, keep_smaller, example_input)


ENGINES.add("onnxruntime", OnnxEngine())
