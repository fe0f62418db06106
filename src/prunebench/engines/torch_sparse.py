"""``torch-sparse``: the pruned layers as torch sparse CSR or BSR tensors (MKL / ATen sparse
kernels), everything else dense PyTorch.

Products run channels-first (``W @ X``, the natural sparse x dense product): a 1x1
convolution of one image multiplies its ``[C, H*W]`` view without a copy. Batch-1 linear
layers call ``addmv``. GRU/LSTM run the runtime's recurrence (:class:`SparseRNN`) with torch
sparse products. Values are fp32 only (torch's CPU sparse products have no float16/int8).
BSR tensors must tile their matrix exactly, so a matrix is padded to whole blocks (zero rows
and columns; the input is padded to match).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..formats import Format
from ..runtime.compile import Backend, CompiledModel, compile
from ..runtime.layers import MatrixOp
from .base import ENGINES, Engine
from .native import runtime_options


class TorchSparseOp(MatrixOp):
    """``W @ X + b`` with W a torch sparse CSR or BSR tensor.

    Indices are int32 (half the index bytes of torch's default int64, and MKL's LP64
    interface takes them as they are); ``index_dtype=np.int64`` gives what
    ``Tensor.to_sparse_csr()`` would build.
    """

    layout = "columns"

    def __init__(self, fmt: Format, bias: np.ndarray | None, index_dtype: Any = np.int32):
        rows, cols = fmt.shape
        self.format, self.values, self.shape = fmt.name, fmt.values, (rows, cols)
        a = fmt.arrays()

        def _index(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=index_dtype))

        with warnings.catch_warnings():   # "sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore")
            if fmt.name == "csr":
                self.padded = (rows, cols)
                self.W = torch.sparse_csr_tensor(_index(a["indptr"]), _index(a["indices"]),
                                                 torch.from_numpy(np.ascontiguousarray(a["data"])),
                                                 size=self.padded)
            else:
                r, c = fmt.meta()["block"]
                self.padded = (-(-rows // r) * r, -(-cols // c) * c)
                self.W = torch.sparse_bsr_tensor(_index(a["indptr"]), _index(a["indices"]),
                                                 torch.from_numpy(np.ascontiguousarray(a["data"])),
                                                 size=self.padded)
        b = np.zeros(self.padded[0], np.float32)
        if bias is not None:
            b[:rows] = bias
        self.has_bias = bias is not None
        self.b = torch.from_numpy(b)
        self.b2 = self.b[:, None]

    def _pad(self, X: torch.Tensor) -> torch.Tensor:
        """X [cols, N] padded with zero rows to the padded column count."""
        extra = self.padded[1] - self.shape[1]
        return F.pad(X, (0, 0, 0, extra)) if extra else X

    def _cut(self, Y: torch.Tensor) -> torch.Tensor:
        return Y[: self.shape[0]] if self.padded[0] != self.shape[0] else Y

    def left(self, X: torch.Tensor) -> torch.Tensor:
        X = self._pad(X)
        if X.shape[1] == 1:
            return self._cut(torch.addmv(self.b, self.W, X[:, 0]).unsqueeze(1))
        return self._cut(torch.addmm(self.b2, self.W, X))

    def linear(self, X: torch.Tensor) -> torch.Tensor:
        if X.shape[0] == 1:
            x = X[0]
            extra = self.padded[1] - self.shape[1]
            if extra:
                x = F.pad(x, (0, extra))
            return self._cut(torch.addmv(self.b, self.W, x)).unsqueeze(0)
        return self.left(X.t()).t()

    def nbytes(self) -> int:
        W = self.W
        parts = (W.crow_indices(), W.col_indices(), W.values())
        b = self.b.numel() * 4 if self.has_bias else 0
        return int(sum(t.numel() * t.element_size() for t in parts) + b)


class TorchSparseBackend(Backend):
    name = "torch-sparse"
    formats = ("csr", "bsr")
    values = ("fp32",)

    def make_op(self, fmt: Format, bias: np.ndarray | None, threads: int) -> TorchSparseOp:
        return TorchSparseOp(fmt, bias)

    def set_threads(self, threads: int) -> None:
        pass                        # PyTorch's own count, set by the compiled model

    def max_threads(self) -> int:
        import os

        return os.cpu_count() or 1


TORCH_SPARSE = TorchSparseBackend()


class TorchSparseEngine(Engine):
    name = "torch-sparse"
    formats = TORCH_SPARSE.formats
    values = TORCH_SPARSE.values
    rnn = ("our recurrence (runtime.SparseRNN) with torch sparse CSR/BSR products for the "
           "input and hidden gate matrices")

    def compile(self, model: nn.Module, format: Any = "csr", *, values: str = "fp32",
                threads: int = 1, **options: Any) -> CompiledModel:
        return compile(model, format, values=values, threads=threads, backend=TORCH_SPARSE,
                       **runtime_options(options))


ENGINES.add("torch-sparse", TorchSparseEngine())
