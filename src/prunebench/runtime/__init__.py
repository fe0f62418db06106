"""Sparse inference runtime: the compressed-model file, sparse layers and ``compile``, and
verification against dense."""
from .compile import Backend, CompiledModel, check_threads, compile, plan_model
from .layers import (DenseOp, KernelOp, MatrixOp, SparseConv, SparseLinear, SparseRNN,
                     StackedOp)
from .modelfile import encode_model, load_model, save_model
from .verify import TOLERANCE, Verification, verify

__all__ = ["encode_model", "load_model", "save_model", "TOLERANCE", "Verification", "verify",
           "compile", "plan_model", "CompiledModel", "Backend", "check_threads",
           "MatrixOp", "KernelOp", "DenseOp", "StackedOp", "SparseLinear", "SparseConv",
           "SparseRNN"]
