"""``litert``: the pruned model converted to a ``.tflite`` file (``litert-torch``) and run by
LiteRT's interpreter (``ai-edge-litert``) with its default XNNPACK delegate, the edge runtime.

Formats
-------
``dense``
    every weight a dense constant: XNNPACK's dense kernels (NHWC GEMM / depthwise).
``tflite-sparse``
    every float32 filter of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED whose zeros make the
    encoding smaller is stored in TFLite's own sparse tensor format (``Tensor.sparsity``: all
    dimensions dense except the innermost, input channels, as SPARSE_CSR with the narrowest
    index vectors that fit) behind a DENSIFY operator, the file layout XNNPACK's "sparse
    inference" expects. The delegate densifies these constants when it prepares the graph and
    sets ``XNN_FLAG_HINT_SPARSE_INFERENCE``; XNNPACK then runs eligible 1x1 convolutions as
    sparse products (NCHW SpMM) only where its CHW kernels are enabled: not on x86 CPUs with
    AVX, where it keeps dense inference by design (``xnn_is_chw_compatible_config``). The
    compiled callable reports ``file_bytes`` and ``dense_file_bytes``.

Values are fp32. Threads: the interpreter's ``num_threads`` (XNNPACK's thread pool).
The conversion traces the model on ``example_input`` (or on the first input it is called with)
at that batch size; other batch sizes resize the input, or are converted again when resizing
does not give a batch of outputs.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..errors import BadInputError, PrunebenchError
from .base import ENGINES, Engine

INSTALL = ("engine litert needs ai-edge-litert and litert-torch: pip install -c constraints.txt "
           "'prunebench[edge]' (ai-edge-litert==2.3.0 litert-torch==0.10.0)")
SPARSE_FORMAT = "tflite-sparse"
#: operators whose input 1 (the filter) may be written sparse
FILTER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def missing_packages() -> list[str]:
    """The litert packages that cannot be imported here (empty when the engine can run)."""
    import importlib.util

    return [p for p, mod in (("ai-edge-litert", "ai_edge_litert"), ("litert-torch", "litert_torch"))
            if importlib.util.find_spec(mod) is None]


def require() -> None:
    """Raise one line naming what to install when the engine's packages are missing."""
    missing = missing_packages()
    if missing:
        raise PrunebenchError(f"{INSTALL}; missing here: {', '.join(missing)}")


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to stderr: the converter prints progress and C++ logs on stdout,
    which must stay one JSON document under ``--json``."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def convert_tflite(model: nn.Module, example: torch.Tensor) -> bytes:
    """The ``.tflite`` bytes of ``model`` traced on ``example`` (static shape)."""
    require()
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch

    with _quiet_stdout():
        try:
            converted = litert_torch.convert(model.eval(), (example,))
            return bytes(converted.model_content())
        except Exception as e:  # noqa: BLE001 - converter errors are many and varied
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PrunebenchError(f"litert conversion of {type(model).__name__} failed: {msg}") \
                from None


def _index_vector(values: np.ndarray) -> tuple[int, Any, int]:
    """The narrowest TFLite SparseIndexVector (type code, object) holding ``values``."""
    from ai_edge_litert import schema_py_generated as fb

    top = int(values.max()) if values.size else 0
    for limit, code, cls, dtype in ((255, fb.SparseIndexVector.Uint8Vector, fb.Uint8VectorT, np.uint8),
                                    (65535, fb.SparseIndexVector.Uint16Vector, fb.Uint16VectorT,
                                     np.uint16),
                                    (2**31 - 1, fb.SparseIndexVector.Int32Vector, fb.Int32VectorT,
                                     np.int32)):
        if top <= limit:
            vec = cls()
            vec.values = values.astype(dtype)
            return code, vec, np.dtype(dtype).itemsize
    raise PrunebenchError(f"sparse index {top} does not fit TFLite's int32 index vectors")


def encode_sparse(a: np.ndarray) -> tuple[np.ndarray, Any, int]:
    """TFLite sparsity parameters for ``a``: leading dimensions dense, the last one SPARSE_CSR.
    Returns (values, SparsityParametersT, bytes of values + segments + indices)."""
    from ai_edge_litert import schema_py_generated as fb

    rows = a.reshape(-1, a.shape[-1])
    nz_r, nz_c = np.nonzero(rows)
    segments = np.concatenate([[0], np.cumsum(np.count_nonzero(rows, axis=1))])
    dims = []
    for d in a.shape[:-1]:
        dm = fb.DimensionMetadataT()
        dm.format, dm.denseSize = fb.DimensionType.DENSE, int(d)
        dims.append(dm)
    csr = fb.DimensionMetadataT()
    csr.format = fb.DimensionType.SPARSE_CSR
    csr.arraySegmentsType, csr.arraySegments, seg_b = _index_vector(segments)
    csr.arrayIndicesType, csr.arrayIndices, idx_b = _index_vector(nz_c)
    dims.append(csr)
    sp = fb.SparsityParametersT()
    sp.traversalOrder = list(range(a.ndim))
    sp.dimMetadata = dims
    values = rows[nz_r, nz_c].astype(np.float32)
    return values, sp, values.nbytes + len(segments) * seg_b + len(nz_c) * idx_b


def sparsify_tflite(data: bytes, keep_smaller: bool = True) -> tuple[bytes, list[dict]]:
    """Rewrite the float32 constant filters (input 1 of :data:`FILTER_OPS`) that have zeros in
    TFLite's sparse tensor format, each behind a DENSIFY operator placed first in the graph.
    Returns the new bytes and one row per filter considered."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fu

    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    model = fu.read_model_from_bytearray(bytearray(data))
    densify_code = None
    rows = []
    for sg in model.subgraphs:
        densify_ops = []
        seen = set()
        for op in sg.operators:
            name = names.get(fu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]))
            if name not in FILTER_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
                continue
            t_idx = op.inputs[1]
            tensor = sg.tensors[t_idx]
            buf = model.buffers[tensor.buffer]
            if t_idx in seen or tensor.type != fb.TensorType.FLOAT32 or buf.data is None \
                    or tensor.sparsity is not None:
                continue
            seen.add(t_idx)
            a = np.frombuffer(bytes(buf.data), dtype=np.float32).reshape(list(tensor.shape))
            nz = int(np.count_nonzero(a))
            row = {"name": tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name),
                   "op": name, "shape": [int(s) for s in tensor.shape],
                   "sparsity": 1 - nz / a.size if a.size else 0.0, "dense_bytes": int(a.nbytes),
                   "sparse_bytes": None, "sparse": False}
            rows.append(row)
            if nz == a.size:
                continue
            values, sp, nbytes = encode_sparse(a)
            row["sparse_bytes"] = int(nbytes)
            if keep_smaller and nbytes >= a.nbytes:
                continue
            # the sparse constant is a new tensor; the old one becomes DENSIFY's output, so
            # the consumers keep their input index
            new_buf = fb.BufferT()
            new_buf.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
            model.buffers.append(new_buf)
            sparse_t = fb.TensorT()
            sparse_t.shape = list(tensor.shape)
            sparse_t.type = fb.TensorType.FLOAT32
            sparse_t.buffer = len(model.buffers) - 1
            sparse_t.name = row["name"] + "/sparse"
            sparse_t.sparsity = sp
            sg.tensors.append(sparse_t)
            shared = sum(t.buffer == tensor.buffer for g in model.subgraphs for t in g.tensors)
            if shared == 1:         # the dense copy leaves the file
                buf.data = None
            tensor.buffer = 0
            if densify_code is None:
                code = fb.OperatorCodeT()
                code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.DENSIFY
                code.version = 1
                model.operatorCodes.append(code)
                densify_code = len(model.operatorCodes) - 1
            dop = fb.OperatorT()
            dop.opcodeIndex = densify_code
            dop.inputs, dop.outputs = [len(sg.tensors) - 1], [t_idx]
            dop.builtinOptionsType = fb.BuiltinOptions.DensifyOptions
            dop.builtinOptions = fb.DensifyOptionsT()
            densify_ops.append(dop)
            row["sparse"] = True
        sg.operators = densify_ops + list(sg.operators)
    return bytes(fu.convert_object_to_bytearray(model)), rows


def sparse_tensors(data: bytes) -> list[dict]:
    """Every tensor of a ``.tflite`` file stored with ``sparsity``: name, shape, stored values,
    and the consuming operator (read back from the flatbuffer, for tests and inspection)."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fu

    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    model = fu.read_model_from_bytearray(bytearray(data))
    out = []
    for sg in model.subgraphs:
        consumers = {o: names.get(fu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]))
                     for op in sg.operators for o in (op.inputs or [])}
        for i, t in enumerate(sg.tensors):
            if t.sparsity is None:
                continue
            buf = model.buffers[t.buffer].data
            last = t.sparsity.dimMetadata[-1]
            out.append({"index": i, "name": t.name.decode() if isinstance(t.name, bytes) else t.name,
                        "shape": [int(s) for s in t.shape],
                        "values": np.frombuffer(bytes(buf), dtype=np.float32) if buf is not None else None,
                        "dim_formats": [d.format for d in t.sparsity.dimMetadata],
                        "traversal_order": list(t.sparsity.traversalOrder),
                        "segments": np.asarray(last.arraySegments.values) if last.arraySegments else None,
                        "indices": np.asarray(last.arrayIndices.values) if last.arrayIndices else None,
                        "consumer": consumers.get(i)})
    return out


class LiteRTModel:
    """The callable ``litert`` compiles to: ``run(x) -> torch.Tensor``.

    Attributes (after construction with an example input, or after the first call):
    ``tflite_bytes`` (the file as run), ``file_bytes``, ``dense_file_bytes`` (the dense
    conversion), ``plan`` (one row per filter considered), ``threads_effective``, ``note``.
    """

    def __init__(self, model: nn.Module, sparse: bool, threads: int, keep_smaller: bool = True,
                 example_input: torch.Tensor | None = None):
        # not called ``model``: a profiler that hooks "the module behind the callable" must not
        # hook this one, which LiteRT never calls
        self.source_model = model.eval()
        self.sparse, self.threads, self.keep_smaller = sparse, threads, keep_smaller
        self.threads_effective = threads
        self.plan: dict[str, dict] = {}
        self.tflite_bytes = b""
        self.file_bytes: int | None = None
        self.dense_file_bytes: int | None = None
        self.note = ("sparse filters are densified by the XNNPACK delegate at load; its sparse "
                     "(NCHW) inference runs only on CPUs without AVX" if sparse else "")
        self._by_batch: dict[int, Any] = {}   # batch size -> its LiteRT Interpreter
        self._shape: tuple[int, ...] | None = None
        if example_input is not None:
            self._build(example_input[:1])

    def _encode(self, example: torch.Tensor) -> bytes:
        data = convert_tflite(self.source_model, example)
        self.dense_file_bytes = len(data)
        if self.sparse:
            data, rows = sparsify_tflite(data, self.keep_smaller)
            self.plan = {r["name"]: r for r in rows}
        return data

    def _interpreter(self, data: bytes) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        try:
            it = Interpreter(model_content=data, num_threads=self.threads)
            it.allocate_tensors()
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PrunebenchError(f"LiteRT cannot load the converted model: {msg}") from None
        return it

    def _build(self, example: torch.Tensor) -> tuple[int, ...]:
        """Convert at ``example``'s shape; returns the input shape but the batch."""
        self.tflite_bytes = self._encode(example)
        self.file_bytes = len(self.tflite_bytes)
        self._shape = tuple(example.shape[1:])
        it = self._interpreter(self.tflite_bytes)
        self._by_batch[len(example)] = it
        return self._shape

    def _for_batch(self, x: torch.Tensor) -> Any:
        n = len(x)
        if n in self._by_batch:
            return self._by_batch[n]
        it = self._interpreter(self.tflite_bytes)
        inp = it.get_input_details()[0]
        try:
            it.resize_tensor_input(inp["index"], [n, *inp["shape"][1:]])
            it.allocate_tensors()
            if int(it.get_output_details()[0]["shape"][0]) != n:
                raise ValueError("output batch")
        except Exception:  # noqa: BLE001 - the graph fixed its batch: convert at this one
            it = self._interpreter(self._encode(x[:n]))
        self._by_batch[n] = it
        return it

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = self._build(x[:1]) if self._shape is None else self._shape
        if tuple(x.shape[1:]) != shape:
            raise BadInputError(f"litert: input shape {tuple(x.shape)}; the model was converted "
                                f"for (batch, {', '.join(map(str, shape))})")
        it = self._for_batch(x)
        inp = it.get_input_details()[0]
        # the converter makes int64 inputs (token ids) int32: cast to the graph's own dtype
        xn = np.ascontiguousarray(x.detach().numpy(), dtype=inp["dtype"])
        it.set_tensor(inp["index"], xn)
        it.invoke()
        return torch.from_numpy(it.get_tensor(it.get_output_details()[0]["index"]).copy())


class LiteRTEngine(Engine):
    name = "litert"
    formats = ("dense", SPARSE_FORMAT)
    own_formats = (SPARSE_FORMAT,)
    values = ("fp32",)
    rnn = "whatever litert-torch lowers GRU/LSTM to (dense)"

    def check_available(self) -> None:
        require()

    def compile(self, model: nn.Module, format: Any = "dense", *, values: str = "fp32",
                threads: int = 1, example_input: torch.Tensor | None = None,
                keep_smaller: bool = True, **options: Any) -> LiteRTModel:
        from ..runtime.compile import check_threads

        if format not in self.formats:
            raise BadInputError(f"engine litert runs formats {', '.join(self.formats)}; got "
                                f"{format!r}")
        if values not in self.values:
            raise BadInputError(f"engine litert runs fp32 values; got values={values!r}")
        threads = check_threads(threads)
        require()
        return LiteRTModel(model, format == SPARSE_FORMAT, threads, keep_smaller, example_input)


ENGINES.add("litert", LiteRTEngine())
