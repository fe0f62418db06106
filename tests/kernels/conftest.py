import numba
import pytest

from prunebench.kernels import get_threads, set_threads


@pytest.fixture(params=[1, 2], ids=["t1", "t2"])
def threads(request):
    """Run the test on 1 and on 2 threads, restoring the previous count."""
    if request.param > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 numba threads")
    before = get_threads()
    set_threads(request.param)
    yield request.param
    set_threads(before)
