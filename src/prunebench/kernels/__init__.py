"""Batch-1 and batch-B sparse x dense products for pruned linear layers, one module per format.

Convention: W is [rows=out, cols=in]. For every format ``fmt`` in csr, delta8, bsr, ell, bitmap, nm, panel, cbcsr:

* ``fmt_matvec(*arrays, x, *, shape, <format options>, scales=None, bias=None, out=None) -> y``:
  ``y[rows] = scales * (W @ x) + bias``; checks shapes and dtypes (never the structure: that is
  the format's ``check()``), allocates ``out`` when not given;
* ``fmt_matmul(*arrays, X, *, shape, ...) -> Y``: ``Y[B, rows] = X[B, cols] @ W.T``, likewise;
* ``spmv_fmt`` / ``spmm_fmt``: the numba kernels behind them. They check nothing; ``spmv_fmt``
  writes into a preallocated ``y``, ``spmm_fmt(*arrays, scales, bias, X, Y, rows, nparts)``
  into ``Y`` and returns it (``Y`` of another shape, e.g. ``_left.NO_OUT``: a new array);
  ``scales``/``bias`` are float32 arrays, empty for none; float16
  values are passed as their uint16 bits (``data.view(np.uint16)``: numba has no float16); the
  last argument ``nparts`` is the number of work parts, normally the thread count;
* ``fmt_reference``: a NumPy float64 reference used by the tests.

The three checked products of every format come from one factory
(:func:`~prunebench.kernels.products.make_products`) and are registered in :data:`KERNELS`
under the format's name; the arrays a format object hands over are its class's
``kernel_arrays`` (:meth:`prunebench.formats.Format.kernel_args`).

Values may be float32, float16 or int8 (int8 with per-output-row float32 ``scales``, weight-only
quantisation: activations stay float32); products accumulate in float32. Column indices may be
uint8/uint16/int32/int64 but must be below 2**31. Stored zeros (bitmap lanes, BSR block fill,
ELL and N:M padding) multiply x as dense ``W @ x`` does, so an inf/NaN in x reaches y there.
Threads: :func:`set_threads` (numba's count, range-checked) applies to every kernel; idle
threads wait passively (:func:`wait_policy`), so a call on a busy machine does not wait for a
peer that spins away its core.
"""
from ._cache import drop_stale_cache, sources_digest

drop_stale_cache()  # before the kernel modules load their numba caches

from ._threads import get_threads, max_threads, set_threads, wait_policy  # noqa: E402
from .products import KERNELS, Checked, Kernel, make_products  # noqa: E402

# each module registers its format in KERNELS on import; this order is the order the native
# engine lists (and the planner tries) its formats in
from .csr import csr_left, csr_matmul, csr_matvec, csr_reference, spmm_csr, spmv_csr  # noqa: E402
from .delta8 import (delta8_left, delta8_matmul, delta8_matvec, delta8_reference,  # noqa: E402
                     spmm_delta8, spmv_delta8)
from .bsr import bsr_left, bsr_matmul, bsr_matvec, bsr_reference, spmm_bsr, spmv_bsr  # noqa: E402
from .bitmap import bitmap_left, bitmap_matmul, bitmap_matvec, bitmap_reference, spmm_bitmap, spmv_bitmap  # noqa: E402
from .nm import nm_left, nm_matmul, nm_matvec, nm_reference, spmm_nm, spmv_nm  # noqa: E402
from .ell import ell_left, ell_matmul, ell_matvec, ell_reference, spmm_ell, spmv_ell  # noqa: E402
from .panel import (panel_left, panel_matmul, panel_matvec, panel_reference,  # noqa: E402
                    spmm_panel, spmv_panel)
from .cbcsr import (cbcsr_left, cbcsr_matmul, cbcsr_matvec, cbcsr_reference,  # noqa: E402
                    spmm_cbcsr, spmv_cbcsr)

__all__ = [
    "set_threads", "get_threads", "max_threads", "sources_digest", "wait_policy",
    "KERNELS", "Kernel", "Checked", "make_products",
    "csr_matvec", "csr_matmul", "csr_left", "csr_reference", "spmv_csr", "spmm_csr",
    "delta8_matvec", "delta8_matmul", "delta8_left", "delta8_reference", "spmv_delta8", "spmm_delta8",
    "bsr_matvec", "bsr_matmul", "bsr_left", "bsr_reference", "spmv_bsr", "spmm_bsr",
    "ell_matvec", "ell_matmul", "ell_left", "ell_reference", "spmv_ell", "spmm_ell",
    "bitmap_matvec", "bitmap_matmul", "bitmap_left", "bitmap_reference", "spmv_bitmap", "spmm_bitmap",
    "nm_matvec", "nm_matmul", "nm_left", "nm_reference", "spmv_nm", "spmm_nm",
    "panel_matvec", "panel_matmul", "panel_left", "panel_reference", "spmv_panel", "spmm_panel",
    "cbcsr_matvec", "cbcsr_matmul", "cbcsr_left", "cbcsr_reference", "spmv_cbcsr", "spmm_cbcsr",
]
