"""Engines behind one protocol (:class:`Engine`), looked up in :data:`ENGINES`.

=============  ==================================  ===================  ==================
engine         formats                             values               threads
=============  ==================================  ===================  ==================
torch-dense    dense                               fp32                 torch
torch-sparse   csr, bsr (torch sparse tensors)     fp32                 torch (MKL)
scipy          csr, bsr, coo, csc                  fp32                 1 (single-threaded)
onnxruntime    dense, coo (sparse initializers)    fp32                 intra_op_num_threads
native         csr, delta8, bsr, bitmap, nm, ell,  fp32, fp16, int8     numba
               panel, cbcsr
openvino       dense, csr (custom op in the graph)  fp32, bf16 (dense)   INFERENCE_NUM_THREADS
litert         dense, tflite-sparse (DENSIFY)      fp32                 num_threads (XNNPACK)
=============  ==================================  ===================  ==================
"""
from typing import Any

from torch import nn

from .base import ENGINES, Engine
from . import torch_dense  # noqa: F401  (registers torch-dense)
from . import (litert_engine, native, onnx_engine, openvino_engine, scipy_engine,  # noqa: F401,E402
               torch_sparse)  # (register)


def compile(model: nn.Module, engine: str = "torch-dense", format: Any = "dense", *,
            values: str = "fp32", threads: int = 1, **options: Any) -> Any:
    """Bind ``model`` to ``engine`` with its pruned layers in ``format`` (a format name, or a
    per-layer plan dict for the engines built on :mod:`prunebench.runtime`).

    Returns the engine's callable (:data:`~prunebench.engines.base.Compiled`), typed ``Any``:
    callers read the attributes its engine gives it (``threads_effective``, ``note``,
    ``plan``, ``file_bytes``, ...), which differ from engine to engine."""
    from ..errors import BadInputError

    eng = ENGINES.get(engine)
    if getattr(model, "prunebench_graph", False) and engine != "onnxruntime":
        raise BadInputError(f"engine {engine!r} cannot run {model.name} (an ONNX graph loaded "
                            "from a graph or .onnx file); it runs on: onnxruntime")
    if isinstance(format, str) and not eng.supports(format):
        raise BadInputError(f"engine {engine!r} cannot run format {format!r}; it runs: "
                            + ", ".join(eng.formats))
    if values not in eng.values:
        raise BadInputError(f"engine {engine!r} cannot run values {values!r}; it runs: "
                            + ", ".join(eng.values))
    return eng.compile(model, format, values=values, threads=threads, **options)


__all__ = ["ENGINES", "Engine", "compile"]
