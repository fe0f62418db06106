"""The model file for models that are not in the zoo: the architecture as an ONNX graph,
the weights in our storage formats, in the same safetensors container as zoo files.

Why ONNX, and what the loader executes
--------------------------------------
* ``torch.export.save``/``load`` were rejected: ``torch.export.load`` restores weights and
  constants with ``torch.load`` (pickle; its own docstring says never to load an untrusted
  file), and a program may carry pickled custom objects.
* An ONNX model is a protobuf message: parsing it builds data, never runs code. ONNX Runtime
  executes only its built-in operators (custom-op libraries load only when a caller registers
  them; we never do). Model-local functions are graphs of the same operators. The one way an
  ONNX file reaches outside itself is *external data* (a tensor whose bytes live in another
  file, read from disk at load): the loader refuses every tensor stored that way.
* ``onnx2torch`` (ONNX -> ``nn.Module``) is not used: it imports ``torchvision`` at import,
  which does not import beside the pinned torch, and it has no GRU/LSTM converters.

So a graph file loads as :class:`GraphModel`, an ``nn.Module`` whose forward runs the graph
on ONNX Runtime; engines ``onnxruntime`` (and ``pb.verify``, ``pb.measure_latency``) run it.
The sparse engines need PyTorch layers: compile the pruned model itself, before saving.

What the file holds
-------------------
* ``extra::onnx``: the ONNX model (uint8) of the *pruned* model, traced by the TorchScript
  exporter (batch dimension dynamic), with every initializer removed;
* one container layer ``g{i}`` per float32 initializer of two or more dimensions, as the
  matrix ``[dims[0], prod(dims[1:])]`` in the requested format (a transposed or gate-reordered
  copy of a PyTorch weight keeps its zeros, so it compresses the same);
* every other initializer raveled into ``extra::values.{dtype}`` in manifest order (float32
  as fp32, or fp16 when ``values`` is already lossy);
* the manifest: ``{"prunebench_model_file": 2, "kind": "graph", "model": name, "values",
  "requested", "fallbacks", "graph": {"initializers": [[name, dims, dtype, layer|null], ...],
  "input": {"shape": [1, ...], "dtype": "float32"}}, "info"}``.

Safety bounds: the initializers' declared sizes are summed before anything is decoded and
refused above ``max_elements`` (2**28 by default, 1 GiB of fp32); every layer's shape must
equal its declared initializer's; the ONNX bytes are bounded by the file's size. The graph is
checked by ``onnx.checker`` (strict shape inference), not run: a graph can compute what it
describes, and running it is the caller's step.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
from numpy.typing import DTypeLike
import torch
from torch import nn

from ..dtypes import FP16_MAX, VALUE_ENCODINGS
from ..errors import BadInputError, FormatError, PrunebenchError
from .encoding import misfit as format_misfit, options_for
from .manifest import FILE_VERSION

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, TensorProto

    from ..formats import Format

#: at most this many weights are decoded from a graph file (declared sizes, checked first)
MAX_ELEMENTS = 2**28
_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
_INPUT_DTYPES = ("float32", "int64")


class GraphModel(nn.Module):
    """A model loaded from a graph file (or an ONNX file): forward runs its ONNX graph on ONNX
    Runtime. ``onnx_bytes`` is the graph with its weights; ``input_shape`` the example input's
    shape (batch 1) and ``input_dtype`` its dtype; ``name`` where it came from."""

    prunebench_graph = True

    def __init__(self, onnx_bytes: bytes, input_shape: Sequence[int], input_dtype: str = "float32",
                 name: str = "graph", threads: int | None = None) -> None:
        super().__init__()
        self.onnx_bytes, self.name = onnx_bytes, name
        self.input_shape, self.input_dtype = tuple(int(d) for d in input_shape), input_dtype
        self.threads = threads
        self.session = self._session(threads or torch.get_num_threads())

    def _session(self, threads: int) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            return ort.InferenceSession(self.onnx_bytes, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT raises its own Fail types
            raise FormatError(f"{self.name}: onnxruntime cannot load the graph: "
                              f"{_first_line(e)}") from None

    def example_input(self, batch: int = 1, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        shape = (batch, *self.input_shape[1:])
        if self.input_dtype == "int64":
            return torch.randint(0, 2, shape, generator=g)
        return torch.randn(shape, generator=g)

    def with_threads(self, threads: int) -> "GraphModel":
        """The same graph on a session with ``threads`` intra-op threads."""
        return GraphModel(self.onnx_bytes, self.input_shape, self.input_dtype, self.name, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = np.ascontiguousarray(x.detach().numpy(),
                                  dtype=np.float32 if x.is_floating_point() else np.int64)
        try:
            out = self.session.run(None, {self.session.get_inputs()[0].name: xn})[0]
        except Exception as e:  # noqa: BLE001
            raise PrunebenchError(f"{self.name}: input shape {tuple(x.shape)} does not fit the "
                                  f"graph (exported for {self.input_shape}, only dim 0 "
                                  f"dynamic): {_first_line(e)[:200]}") from None
        return torch.from_numpy(out)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---------------------------------------------------------------- ONNX safety checks


def _tensors_of(graph: GraphProto) -> Iterator[TensorProto]:
    """Every TensorProto a graph holds: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield sp.values
        yield sp.indices
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _tensors_of(a.g)
            for g in a.graphs:
                yield from _tensors_of(g)


def check_onnx(where: str, proto: ModelProto) -> None:
    """Refuse what would make loading reach outside the bytes given: external data, operator
    domains other than ONNX's own (custom operators)."""
    from onnx import TensorProto

    graphs = [proto.graph]
    for fn in proto.functions:
        for node in fn.node:
            for a in node.attribute:
                if a.HasField("t") and a.t.data_location == TensorProto.EXTERNAL:
                    raise FormatError(f"{where}: function {fn.name!r} holds a tensor stored as "
                                      "external data (a separate file); refused")
    local = {fn.domain for fn in proto.functions}
    for op in proto.opset_import:
        if op.domain not in _DOMAINS and op.domain not in local:
            raise FormatError(f"{where}: the graph uses operator domain {op.domain!r}; "
                              f"allowed: ONNX's own ({', '.join(map(repr, _DOMAINS))})")
    for g in graphs:
        for t in _tensors_of(g):
            if t.data_location == TensorProto.EXTERNAL or len(t.external_data):
                raise FormatError(f"{where}: tensor {t.name!r} is stored as external data (a "
                                  "separate file the loader would read); refused")


def parse_onnx(where: str, data: bytes) -> ModelProto:
    import onnx

    try:
        proto = onnx.ModelProto.FromString(bytes(data))
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError
        raise FormatError(f"{where}: the ONNX graph does not parse: {_first_line(e)}") from None
    check_onnx(where, proto)
    return proto


def graph_input(where: str, proto: ModelProto) -> tuple[list[int | None], str]:
    """(shape with batch 1, dtype) of the graph's single input, None for dims it leaves open."""
    from onnx import TensorProto

    inputs = [i for i in proto.graph.input
              if i.name not in {t.name for t in proto.graph.initializer}]
    if len(inputs) != 1:
        raise BadInputError(f"{where}: the graph has {len(inputs)} inputs; prunebench runs "
                            "models with one input tensor")
    tt = inputs[0].type.tensor_type
    dtype = {TensorProto.FLOAT: "float32", TensorProto.INT64: "int64"}.get(tt.elem_type)
    if dtype is None:
        raise BadInputError(f"{where}: the graph's input has element type {tt.elem_type}; "
                            f"allowed: float32, int64")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    return dims, dtype


# ---------------------------------------------------------------- saving


def _encode_matrix(W: np.ndarray, want: str, values: str, index_dtype: DTypeLike | None,
                   keep_smaller: bool, opts: dict[str, Any]) -> tuple[Format, str]:
    from ..formats import encode

    opts = options_for(want, opts)
    if "rank" in opts:
        opts["rank"] = min(opts["rank"], min(W.shape))
    misfit = format_misfit(want, W, opts)
    if misfit and keep_smaller:
        return encode(W, "dense", values=values), f"{misfit}; stored dense"
    if want == "dense" or not W.size:
        return encode(W, "dense", values=values), "requested"
    fmt = encode(W, want, values=values, index_dtype=index_dtype, **opts)
    dense = encode(W, "dense", values=values)
    if keep_smaller and dense.nbytes()["total"] < fmt.nbytes()["total"]:
        return dense, (f"{want} would take {fmt.nbytes()['total']} B > dense "
                       f"{dense.nbytes()['total']} B at sparsity {float((W == 0).mean()):.2f}")
    return fmt, "requested"


def save_graph_model(path: str | os.PathLike[str], model: nn.Module,
                     example_input: torch.Tensor, *, name: str = "graph",
                     format: str | dict[str, str] = "csr",
                     values: str = "fp32", index_dtype: DTypeLike | None = None,
                     keep_smaller: bool = True, info: dict[str, Any] | None = None,
                     **format_opts: Any) -> dict[str, dict[str, Any]]:
    """Write ``model`` (any ``nn.Module`` the ONNX exporter traces on ``example_input``) as a
    graph file; see the module docstring. Returns the plan {layer: {format, requested, reason,
    initializer, shape, sparsity, bytes, lossless}}."""
    import onnx
    from onnx import numpy_helper

    from ..engines.onnx_engine import export_onnx
    from ..formats import FORMATS, save_container

    if values not in VALUE_ENCODINGS:
        raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_ENCODINGS)}")
    if not isinstance(format, str):
        raise BadInputError("format: a graph file takes one format name for every weight "
                            "matrix (a per-layer plan needs a zoo model)")
    FORMATS.get(format)
    if not isinstance(example_input, torch.Tensor):
        raise BadInputError(f"example_input: got {type(example_input).__name__}, expected a "
                            "torch.Tensor (one batch of the model's input)")
    try:
        data = export_onnx(model.eval(), example_input[:1])
    except PrunebenchError as e:
        raise BadInputError(f"model: cannot be exported to ONNX for the model file: {e}") from None
    proto = onnx.load_from_string(data)
    shape, dtype = graph_input(f"model {name}", proto)
    shape = [1, *example_input.shape[1:]]
    layers: dict[str, Format] = {}
    plan: dict[str, dict[str, Any]] = {}
    entries: list[list[Any]] = []
    extra_parts: dict[str, list[np.ndarray]] = {}
    for i, init in enumerate(proto.graph.initializer):
        a = numpy_helper.to_array(init)
        dt = a.dtype.name
        if dt not in _DTYPES:
            raise BadInputError(f"model: initializer {init.name!r} has dtype {dt}; allowed: "
                                + ", ".join(_DTYPES))
        if dt == "float32" and a.ndim >= 2:
            lname = f"g{i}"
            W = np.ascontiguousarray(a.reshape(a.shape[0], -1))
            try:
                fmt, reason = _encode_matrix(W, format, values, index_dtype, keep_smaller,
                                             format_opts)
            except BadInputError as e:
                raise BadInputError(f"initializer {init.name}: {e}") from None
            layers[lname] = fmt
            plan[lname] = {"format": fmt.name, "requested": format, "reason": reason,
                           "initializer": init.name, "shape": list(W.shape),
                           "sparsity": float((W == 0).mean()) if W.size else 0.0,
                           "bytes": fmt.nbytes()["total"], "lossless": fmt.lossless}
            entries.append([init.name, list(a.shape), dt, lname])
            continue
        store = "float16" if dt == "float32" and values != "fp32" else dt
        if store == "float16" and a.size and float(np.abs(a).max()) > FP16_MAX:
            raise BadInputError(f"--values {values}: initializer {init.name!r} holds "
                                f"{float(np.abs(a).max()):g}, beyond float16; use --values fp32")
        extra_parts.setdefault(store, []).append(a.ravel().astype(store))
        entries.append([init.name, list(a.shape), dt, None])
    del proto.graph.initializer[:]
    extra = {f"values.{k}": np.concatenate(v) for k, v in extra_parts.items()}
    extra["onnx"] = np.frombuffer(proto.SerializeToString(), dtype=np.uint8)
    manifest = {"prunebench_model_file": FILE_VERSION, "kind": "graph", "model": name,
                "values": values, "requested": format,
                "fallbacks": {k: p["reason"] for k, p in plan.items() if p["reason"] != "requested"},
                "graph": {"initializers": entries,
                          "input": {"shape": shape, "dtype": dtype}}}
    if info:
        manifest["info"] = info
    save_container(path, layers, extra, manifest)
    return plan


# ---------------------------------------------------------------- loading


def _entries(where: str, graph: Any) -> tuple[list[list[Any]], dict[str, Any]]:
    if not isinstance(graph, dict) or not isinstance(graph.get("initializers"), list):
        raise FormatError(f"{where}: manifest 'graph' should be a dict with an 'initializers' list")
    entries = graph["initializers"]
    for e in entries:
        ok = (isinstance(e, list) and len(e) == 4 and isinstance(e[0], str)
              and isinstance(e[1], list) and len(e[1]) <= 8
              and all(type(d) is int and d >= 0 for d in e[1]) and e[2] in _DTYPES
              and (e[3] is None or (isinstance(e[3], str) and e[2] == "float32"
                                    and len(e[1]) >= 2)))
        if not ok:
            raise FormatError(f"{where}: manifest graph initializer {str(e)[:80]} should be "
                              "[name, [dims <= 8, each int >= 0], dtype, layer or null]")
    inp = graph.get("input")
    if (not isinstance(inp, dict) or inp.get("dtype") not in _INPUT_DTYPES
            or not isinstance(inp.get("shape"), list) or not 1 <= len(inp["shape"]) <= 8
            or not all(type(d) is int and 1 <= d <= 2**20 for d in inp["shape"])
            or math.prod(inp["shape"]) > 2**24):
        raise FormatError(f"{where}: manifest graph input {str(inp)[:80]} should be "
                          f"{{'shape': [1..8 dims, each 1..2**20, at most 2**24 elements], "
                          f"'dtype': one of {', '.join(_INPUT_DTYPES)}}}")
    return entries, inp


def load_graph_model(where: str, layers: dict[str, Format], extra: dict[str, np.ndarray],
                     manifest: dict[str, Any], max_elements: int = MAX_ELEMENTS) -> GraphModel:
    """Rebuild a graph file's model (``modelfile.load_model`` calls this for ``kind: graph``)."""
    from onnx import numpy_helper

    entries, inp = _entries(where, manifest.get("graph"))
    total = sum(math.prod(e[1]) for e in entries)
    if total > max_elements:  # before any tensor is decoded: a memory bomb stops here
        raise FormatError(f"{where}: manifest declares {total:,} weights, more than the "
                          f"{max_elements:,} a graph file may decode (max_elements)")
    named = {e[3] for e in entries if e[3] is not None}
    if len(named) != sum(e[3] is not None for e in entries) or set(layers) != named:
        stray = sorted(set(layers) ^ named)
        raise FormatError(f"{where}: layers and manifest initializers disagree "
                          f"({stray[0] if stray else 'a layer is named twice'!r})")
    if "onnx" not in extra or extra["onnx"].dtype != np.uint8 or extra["onnx"].ndim != 1:
        raise FormatError(f"{where}: tensor extra::onnx (the graph, uint8) is missing or malformed")
    proto = parse_onnx(where, extra["onnx"].tobytes())
    if len(proto.graph.initializer) or len(proto.graph.sparse_initializer):
        raise FormatError(f"{where}: the stored graph holds initializers of its own; a graph "
                          "file keeps every weight in the container")
    values = manifest["values"]
    stores: dict[str, list[int]] = {}
    for name, dims, dt, lname in entries:
        if lname is None:
            stores.setdefault("float16" if dt == "float32" and values != "fp32" else dt,
                              []).append(math.prod(dims))
    expected = {f"values.{k}" for k in stores} | {"onnx"}
    if set(extra) != expected:
        raise FormatError(f"{where}: extras {sorted(extra)}, expected {sorted(expected)}")
    for k, sizes in stores.items():
        a = extra[f"values.{k}"]
        if a.dtype.name != k or a.ndim != 1 or len(a) != sum(sizes):
            raise FormatError(f"{where}: tensor extra::values.{k} is {a.dtype} {list(a.shape)}, "
                              f"expected {k} [{sum(sizes)}]")
    offsets = {k: 0 for k in stores}
    for name, dims, dt, lname in entries:
        if lname is not None:
            fmt, want = layers[lname], (dims[0], math.prod(dims[1:]))
            if tuple(fmt.shape) != want:
                raise FormatError(f"{where}, layer {lname!r} ({name}): shape {list(fmt.shape)}, "
                                  f"but its initializer needs {list(want)}")
            if fmt.values != values:
                raise FormatError(f"{where}, layer {lname!r}: values {fmt.values!r}, but the "
                                  f"manifest says {values!r}")
            a = fmt.to_dense().astype(np.float32).reshape(dims)
        else:
            k = "float16" if dt == "float32" and values != "fp32" else dt
            n = math.prod(dims)
            a = extra[f"values.{k}"][offsets[k]:offsets[k] + n].astype(dt).reshape(dims)
            offsets[k] += n
        proto.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(a), name))
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # noqa: BLE001 - ValidationError, InferenceError
        raise FormatError(f"{where}: the stored graph is not a valid ONNX model: "
                          f"{_first_line(e)[:200]}") from None
    return GraphModel(proto.SerializeToString(), inp["shape"], inp["dtype"],
                      name=str(manifest.get("model", "graph"))[:200])


def load_onnx_file(path: str, input_shape: Sequence[int] | None = None) -> GraphModel:
    """A plain ``.onnx`` file as a :class:`GraphModel` (dense; the same checks as a graph
    file: no external data, no custom operator domains)."""
    where = f"file {path}"
    if not os.path.isfile(path):
        raise BadInputError(f"MODEL: ONNX file {path!r} does not exist")
    with open(path, "rb") as f:
        proto = parse_onnx(where, f.read())
    dims, dtype = graph_input(where, proto)
    if input_shape is None:
        if not dims or any(d is None or d < 1 for d in dims[1:]):
            raise BadInputError(f"--input-shape: {where} leaves input dims {dims} open; give "
                                "--input-shape, e.g. 1,40")
        input_shape = [1, *(d for d in dims[1:] if d is not None)]  # none is, checked above
    elif dims and len(dims) != len(input_shape):
        raise BadInputError(f"--input-shape: got {','.join(map(str, input_shape))}, but the "
                            f"graph's input has {len(dims)} dims ({dims})")
    return GraphModel(proto.SerializeToString(), input_shape, dtype, name=os.path.basename(path))


def graph_weights(model: nn.Module, graph: GraphModel
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], GraphModel]:
    """({initializer: tensor} of ``model`` exported as the graph was, the same of ``graph``,
    ``model``'s own graph on ONNX Runtime): what ``pack`` compares to tell whether a graph
    file gave the weights and the outputs back (PyTorch and ONNX Runtime round differently)."""
    import onnx
    from onnx import numpy_helper

    from ..engines.onnx_engine import export_onnx

    def inits(data: bytes) -> dict[str, torch.Tensor]:
        return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
                for t in onnx.load_from_string(data).graph.initializer}

    data = export_onnx(model.eval(), graph.example_input(1))
    return (inits(data), inits(graph.onnx_bytes),
            GraphModel(data, graph.input_shape, graph.input_dtype, name=graph.name))


# ---------------------------------------------------------------- inspection


def inspect_graph(info: dict[str, Any], man: dict[str, Any], fallbacks: dict[str, str]
                  ) -> dict[str, Any]:
    """:func:`prunebench.runtime.modelfile.inspect_model` for a graph file: layers are the
    graph's weight initializers; the dense file is every initializer in fp32 plus the graph."""
    entries = man["graph"]["initializers"]
    for name, dims, dtype, lname in entries:
        if lname is not None:
            lay = info["layers"][lname]
            lay["why"] = fallbacks.get(lname, "requested")
            lay["initializer"] = name
    dense = sum(math.prod(d) * (4 if t == "float32" else np.dtype(t).itemsize)
                for _, d, t, _ in entries)
    info["model"], info["values"] = man["model"], man["values"]
    info["kind"] = "graph"
    info["lossless"] = man["values"] == "fp32" and all(v["lossless"] for v in info["layers"].values())
    lossy = man["values"] != "fp32"
    stored = sum(math.prod(d) * (2 if t == "float32" and lossy else np.dtype(t).itemsize)
                 for _, d, t, lname in entries if lname is None)
    info["dense_file_bytes"] = dense + int(info["extra_bytes"]) - stored  # + the graph itself
    info["compression_ratio"] = info["dense_file_bytes"] / info["file_bytes"]
    return info
