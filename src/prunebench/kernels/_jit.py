"""Pieces every kernel module shares: jit options, scalar conversions and work splitting.

Two numba habits decide kernel speed here and explain the odd-looking code elsewhere:

* Indexing with a *signed* integer makes numba emit a negative-index wraparound select, which
  stops LLVM from vectorising the loop (a contiguous read becomes a gather). Kernels therefore
  slice rows first and loop ``range(view.size)`` from zero, and turn signed column indices into
  unsigned ones with :func:`as_uindex`.
* Anything that reads numba's thread count inside a jitted function makes it uncacheable, so the
  callers pass the number of work parts (``nparts``) in; prange hands each thread an equal run
  of consecutive parts.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange
from numba import types as _types
from numba.extending import intrinsic as _intrinsic
from llvmlite import ir

from ._simd import gather_axpy, half_bits_to_float
from ._transpose import transpose16

# numba's type objects and intrinsic decorator, as Any: their stubs do not describe them
types: Any = _types
intrinsic: Any = _intrinsic

#: options of serial helpers
JIT: dict[str, Any] = dict(fastmath=True, cache=True, nogil=True)
#: options of the exported kernels
PJIT: dict[str, Any] = dict(JIT, parallel=True)

#: weight of one row against one stored value when splitting work between threads
ROW_COST = 8

#: float32 lanes of one vector
LANES = 16
#: SpMM pads the transposed batch to a multiple of this many columns (half a vector)
BATCH_STEP = 8
#: batch columns one SpMM pass over a row's values accumulates (four vectors)
BATCH_PASS = 64
#: rows (columns) per tile of the batch transposes
TILE = 64
#: bytes of a cache line: the buffers the kernels read 16 floats at a time start on one
LINE = 64


@intrinsic
def as_f32(typingctx: Any, v: Any) -> Any:
    """float32 value of one stored weight: float32, int8, or float16 passed as its uint16 bits.

    numba has no float16 type; the LLVM ``half`` conversion compiles to ``vcvtph2ps``, or to
    integer operations where the target has no F16C (:func:`._simd.half_bits_to_float`).
    """
    if v == types.float32:
        def codegen(context, builder, sig, args):
            return args[0]
    elif v == types.int8:
        def codegen(context, builder, sig, args):
            return builder.sitofp(args[0], ir.FloatType())
    elif v == types.uint16:
        def codegen(context, builder, sig, args):
            return half_bits_to_float(builder, args[0])
    else:
        return None
    return types.float32(v), codegen


@intrinsic
def as_uindex(typingctx: Any, v: Any) -> Any:
    """A non-negative index below 2**31 as an unsigned integer LLVM can see is below 2**31.

    numba then skips the negative-index wraparound select, and LLVM can gather with 32-bit
    lane offsets (16 lanes per ``vgatherdps`` instead of 8 with 64-bit ones). uint8/uint16 pass
    through; wider integers keep their low 31 bits, so callers must hold indices < 2**31.
    """
    if not isinstance(v, types.Integer):
        return None
    if not v.signed and v.bitwidth <= 16:
        def passthrough(context, builder, sig, args):
            return args[0]

        return v(v), passthrough

    def codegen(context, builder, sig, args):
        low = builder.trunc(args[0], ir.IntType(32)) if v.bitwidth > 32 else args[0]
        if v.bitwidth < 32:
            low = builder.sext(low, ir.IntType(32)) if v.signed else builder.zext(low, ir.IntType(32))
        return builder.and_(low, ir.Constant(ir.IntType(32), 0x7FFFFFFF))

    return types.uint32(v), codegen


@njit(inline="always", **JIT)
def finish(acc: float, r: int, scales: np.ndarray, bias: np.ndarray) -> float:
    """``acc * scales[r] + bias[r]``; an empty ``scales`` or ``bias`` means none.

    Inlined by numba, not left to LLVM: as a call, every output row increfs and decrefs both
    arrays (four atomic NRT calls per row, seen in the panel kernel's assembly); inlined,
    none (Xeon VM, 4096x4096 at 90%, 2 threads: panel int8 warm 0.199-0.207 -> 0.184-0.191
    ms, cold 0.321-0.324 -> 0.304-0.313 ms; fp32 without scales within noise)."""
    if scales.size:
        acc *= scales[r]
    if bias.size:
        acc += bias[r]
    return acc


@njit(**JIT)
def balanced_splits(ptr: np.ndarray, nparts: int) -> np.ndarray:
    """Boundaries ``b[0]=0 <= ... <= b[nparts]=n`` over the ``n = ptr.size - 1`` rows of a
    prefix-count array, so each part holds about the same ``values + ROW_COST * rows``."""
    n = ptr.size - 1
    out = np.empty(nparts + 1, np.int64)
    out[0] = 0
    out[nparts] = n
    if n <= 0:
        out[:] = 0
        return out
    base = np.int64(ptr[0])
    total = np.int64(ptr[n]) - base + np.int64(n) * ROW_COST
    for p in range(1, nparts):
        target = total * p // nparts
        lo = out[p - 1]
        hi = n
        while lo < hi:  # smallest i with cost(i) >= target
            mid = (lo + hi) // 2
            if np.int64(ptr[mid]) - base + mid * ROW_COST < target:
                lo = mid + 1
            else:
                hi = mid
        out[p] = lo
    return out


@njit(**JIT)
def even_splits(n: int, nparts: int) -> np.ndarray:
    """Boundaries cutting ``n`` equal-cost rows into ``nparts`` parts."""
    out = np.empty(nparts + 1, np.int64)
    for p in range(nparts + 1):
        out[p] = n * p // nparts
    return out


@njit(**JIT)
def empty_lined(n: int) -> np.ndarray:
    """``np.empty(n, np.float32)`` starting on a cache line (:data:`LINE`). numba's own arrays
    of 16 KB and more start 32 bytes into a line (seen on every call but the first), so each
    16-float load from a row of 32 floats (a panel of inputs, a transposed batch of 32)
    straddled two lines (figures: :func:`lined`). Not zeroed: a zeroed buffer of 512 KB came
    from ``calloc``, fresh pages on every call, whose faults cost more than the transpose that
    fills it (32 x 4096, 2 threads, Xeon VM: 0.035 -> 0.008 ms)."""
    buf = np.empty(n + LINE // 4, np.float32)
    skip = (LINE - buf.ctypes.data % LINE) % LINE // 4
    return buf[skip:skip + n]


@njit(**JIT)
def empty_lined_rows(rows: int, width: int) -> np.ndarray:
    """:func:`empty_lined` as a C-contiguous ``[rows, width]`` array."""
    return empty_lined(rows * width).reshape((rows, width))


@njit(**JIT)
def zeros_lined(n: int) -> np.ndarray:
    """:func:`empty_lined`, zeroed."""
    buf = empty_lined(n)
    buf[:] = 0.0
    return buf


def lined(shape: tuple[int, ...]) -> np.ndarray:
    """``np.empty(shape, np.float32)`` starting on a cache line (NumPy's start 16 or 48 bytes
    into one), for the kernels' outputs and batch buffers.

    Measured with the transposed batch and its result on lines (Xeon VM, 4096x4096 at 90%,
    2 threads, warm, medians of 100 calls in each of three processes): csr fp32 at batch 32
    took 1.88-1.90 ms in the processes whose buffer started mid-line and 0.96-0.99 in the
    others, 0.99-1.03 ms in every process after; csr int8 1.85 or 1.09-1.16 -> 1.05-1.11 ms;
    panel fp32 at batch 1 0.169-0.196 -> 0.167-0.170 ms. The run-to-run spread at batch 32
    that the issue 20 notes put down to the host was this."""
    n = int(np.prod(shape))
    buf = np.empty(n + LINE // 4, np.float32)
    skip = (-buf.ctypes.data) % LINE // 4
    return buf[skip:skip + n].reshape(shape)


@njit(inline="always", **JIT)
def transpose_tile(src: np.ndarray, i0: int, i1: int, j0: int, j1: int, dst: np.ndarray) -> None:
    """``dst[j, i] = src[i, j]`` for i in ``i0:i1``, j in ``j0:j1``: 16x16 blocks in registers
    (:func:`._transpose.transpose16`), the edges float by float. Inlined by numba, as
    :func:`finish` is (a call from both threads increfs and decrefs the same two arrays)."""
    i16 = i0 + max(i1 - i0, 0) // 16 * 16
    j16 = j0 + max(j1 - j0, 0) // 16 * 16
    for i in range(i0, i16, 16):
        for j in range(j0, j16, 16):
            transpose16(src, i, j, dst, j, i)
    for i in range(i0, i16):
        for j in range(j16, j1):
            dst[j, i] = src[i, j]
    for i in range(i16, i1):
        for j in range(j0, j1):
            dst[j, i] = src[i, j]


@njit(**PJIT)
def batch_transpose(X: np.ndarray, nrows: int) -> np.ndarray:
    """``X[B, cols]`` transposed to ``T[nrows, ceil(B/8)*8]`` (``nrows >= cols``), zero past
    ``cols`` and ``B``.

    Row ``T[c]`` holds column c of every batch row side by side: the contiguous axpy operand
    of a weight in column ``c``. Tiles of :data:`TILE` columns, each in 16x16 blocks
    transposed in registers (:func:`._transpose.transpose16`), the rest float by float.
    Measured (32 x 4096, 2 threads, Xeon VM, spinning threads): 0.066 ms with a float-by-float
    loop into a zeroed buffer, 0.008 ms so.
    """
    T = empty_lined_rows(nrows, batch_width(X.shape[0]))
    for t in prange((nrows + TILE - 1) // TILE):
        transpose_columns(X, t * TILE, T)
    return T


@njit(inline="always", **JIT)
def batch_width(batch: int) -> int:
    """The width of the transposed batch: ``batch`` rounded up to :data:`BATCH_STEP`."""
    return (batch + BATCH_STEP - 1) // BATCH_STEP * BATCH_STEP


@njit(inline="always", **JIT)
def transpose_columns(X: np.ndarray, c0: int, T: np.ndarray) -> None:
    """One tile of :func:`batch_transpose`: rows ``c0 : c0 + TILE`` of ``T`` (columns of
    ``X``), zero in the padding lanes and past ``X``'s columns."""
    batch, cols = X.shape
    width = T.shape[1]
    c1 = min(c0 + TILE, cols)
    transpose_tile(X, 0, batch, c0, c1, T)
    for c in range(c0, c1):              # the padding lanes
        for b in range(batch, width):
            T[c, b] = 0.0
    for c in range(max(c0, cols), min(c0 + TILE, T.shape[0])):
        T[c, :] = 0.0


@njit(**JIT)
def spmm_row(vals: np.ndarray, cols: np.ndarray, T: np.ndarray, out: np.ndarray) -> None:
    """``out[b] = sum_k vals[k] * X[b, cols[k]]`` for one output row, from the transposed batch
    ``T`` (width a multiple of 8); ``out`` is that row of the transposed result (``T.shape[1]``
    floats)."""
    width = T.shape[1]
    for b0 in range(0, width, BATCH_PASS):
        gather_axpy(vals, cols, T, b0, min(BATCH_PASS, width - b0) // BATCH_STEP, out)


@njit(**PJIT)
def untranspose(YT: np.ndarray, Y: np.ndarray, scales: np.ndarray, bias: np.ndarray) -> None:
    """``Y[b, r] = finish(YT[r, b], r)``: row-by-row results back to the [B, rows] layout.

    Kernels write each output row's batch contiguously (writing ``Y[:, r]`` directly costs B
    scattered cache misses per row) and transpose once at the end, in tiles of :data:`TILE`
    rows so that each row of ``Y`` is written in runs of 64 floats, 16x16 blocks in registers
    (4096 x 32, 2 threads: 0.030 -> 0.010-0.020 ms).
    """
    rows = Y.shape[1]
    for t in prange((rows + TILE - 1) // TILE):
        untranspose_rows(YT, t * TILE, min(t * TILE + TILE, rows), Y, scales, bias)


@njit(inline="always", **JIT)
def untranspose_rows(YT: np.ndarray, r0: int, r1: int, Y: np.ndarray, scales: np.ndarray,
                     bias: np.ndarray) -> None:
    """Rows ``r0:r1`` of :func:`untranspose`: ``Y[b, r] = finish(YT[r, b], r)``."""
    batch = Y.shape[0]
    transpose_tile(YT, r0, r1, 0, batch, Y)
    if scales.size or bias.size:
        for b in range(batch):
            for r in range(r0, r1):
                Y[b, r] = finish(Y[b, r], r, scales, bias)
