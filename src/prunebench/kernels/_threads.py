"""Thread count shared by every kernel (numba's own setting, checked on the way in).

Idle threads wait passively (:func:`wait_policy`; set up in :mod:`prunebench._openmp` before
torch loads the OpenMP runtime the kernels share with it).
"""
from __future__ import annotations

import numbers
from typing import Any

import numba

from .._openmp import WAIT_POLICY
from ..errors import BadInputError

# numba prefers TBB when libtbb can be loaded, and importing openvino (engine ``openvino``) makes
# it loadable: the kernels would then switch threading layer mid-process (and warn on every
# fork). Keep them on OpenMP, as without openvino, unless the user chose a layer.
_config: Any = numba.config   # its settings are set at import, not declared to a type checker
if "tbb" in _config.THREADING_LAYER_PRIORITY:
    _config.THREADING_LAYER_PRIORITY = [
        *[x for x in _config.THREADING_LAYER_PRIORITY if x != "tbb"], "tbb"]


def max_threads() -> int:
    """The most threads numba can run: ``numba.config.NUMBA_NUM_THREADS`` (fixed at import)."""
    return int(_config.NUMBA_NUM_THREADS)


def set_threads(n: int) -> None:
    """Run every following kernel call of this Python thread on ``n`` threads.

    Raises
    ------
    BadInputError
        if ``n`` is not an integer in ``[1, max_threads()]``.

    Examples
    --------
    >>> set_threads(1)
    >>> get_threads()
    1
    """
    limit = max_threads()
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= limit:
        raise BadInputError(
            f"threads={n!r} should be an integer in [1, {limit}] "
            f"(NUMBA_NUM_THREADS={limit} on this machine)"
        )
    numba.set_num_threads(int(n))


def get_threads() -> int:
    """The thread count the next kernel call will use."""
    return int(numba.get_num_threads())


def wait_policy() -> str:
    """How idle kernel threads wait, in words: ``"passive"`` (prunebench's choice), or why not
    (``"set by the user: OMP_WAIT_POLICY=ACTIVE"``, torch imported before prunebench, a numba
    threading layer other than OpenMP)."""
    numba.get_num_threads()       # loads numba's threading layer, as any kernel call does
    layer = numba.threading_layer()
    return WAIT_POLICY if layer == "omp" else f"{layer}'s own (the kernels do not run on OpenMP)"
