"""Argument checks of the wrappers and of set_threads: BadInputError naming argument and value."""
import numba
import numpy as np
import pytest

import prunebench.kernels as K
from prunebench.errors import BadInputError
from prunebench.kernels._jit import balanced_splits
from .kernel_builders import bitmap_arrays, csr_arrays, nm_arrays, nm_matrix, random_matrix


@pytest.mark.parametrize("n", [0, -1, numba.config.NUMBA_NUM_THREADS + 1, 1.5, True, "2", None])
def test_set_threads_rejects(n):
    before = K.get_threads()
    with pytest.raises(BadInputError, match=r"threads=.* should be an integer in \[1, \d+\]"):
        K.set_threads(n)
    assert K.get_threads() == before


def test_set_threads_sets_numba_count():
    before = K.get_threads()
    try:
        K.set_threads(1)
        assert numba.get_num_threads() == 1
        K.set_threads(np.int64(K.max_threads()))
        assert numba.get_num_threads() == K.max_threads()
    finally:
        K.set_threads(before)


@pytest.fixture(scope="module")
def csr():
    W = random_matrix(6, 10, 0.5)
    return csr_arrays(W != 0, W, np.uint8), W


@pytest.mark.parametrize(
    "x, message",
    [
        (np.ones(10, np.float64), "x has dtype float64; allowed: float32"),
        (np.ones(9, np.float32), "x has length 9; the matrix has 10 columns"),
        (np.ones((1, 10), np.float32), "x should have 1 dimension"),
        (np.ones(20, np.float32)[::2], "x should be C-contiguous"),
        ([1.0] * 10, "x should be a numpy.ndarray, got list"),
    ],
)
def test_matvec_rejects_bad_x(csr, x, message):
    arrays, _ = csr
    with pytest.raises(BadInputError, match=message):
        K.csr_matvec(*arrays, x, shape=(6, 10))


def test_matmul_rejects_bad_X(csr):
    arrays, _ = csr
    with pytest.raises(BadInputError, match=r"X has shape \(2, 9\); expected \(batch, 10\)"):
        K.csr_matmul(*arrays, np.ones((2, 9), np.float32), shape=(6, 10))
    with pytest.raises(BadInputError, match="X should have 2 dimension"):
        K.csr_matmul(*arrays, np.ones(10, np.float32), shape=(6, 10))


def test_rejects_bad_out_scales_bias(csr):
    arrays, _ = csr
    x = np.ones(10, np.float32)
    with pytest.raises(BadInputError, match=r"out has shape \(5,\); expected \(6,\)"):
        K.csr_matvec(*arrays, x, shape=(6, 10), out=np.empty(5, np.float32))
    with pytest.raises(BadInputError, match="out has dtype float64"):
        K.csr_matvec(*arrays, x, shape=(6, 10), out=np.empty(6))
    with pytest.raises(BadInputError, match="scales has length 5; the matrix has 6 rows"):
        K.csr_matvec(*arrays, x, shape=(6, 10), scales=np.ones(5, np.float32))
    with pytest.raises(BadInputError, match="bias has dtype float64"):
        K.csr_matvec(*arrays, x, shape=(6, 10), bias=np.ones(6))


def test_rejects_bad_arrays(csr):
    (indptr, indices, data), W = csr
    x = np.ones(10, np.float32)
    with pytest.raises(BadInputError, match="indptr has length 7; shape \\(5, 10\\) needs 6"):
        K.csr_matvec(indptr, indices, data, np.ones(10, np.float32), shape=(5, 10))
    with pytest.raises(BadInputError, match="indices has dtype int16; allowed: uint8, uint16, int32, int64"):
        K.csr_matvec(indptr, indices.astype(np.int16), data, x, shape=(6, 10))
    with pytest.raises(BadInputError, match="data has dtype float64; allowed: float32, float16, int8"):
        K.csr_matvec(indptr, indices, data.astype(np.float64), x, shape=(6, 10))
    with pytest.raises(BadInputError, match="data is int8 and needs scales="):
        K.csr_matvec(indptr, indices, data.astype(np.int8), x, shape=(6, 10))
    with pytest.raises(BadInputError, match="shape=\\(6, -1\\) should hold non-negative integers"):
        K.csr_matvec(indptr, indices, data, x, shape=(6, -1))
    with pytest.raises(BadInputError, match="shape=6 should be a pair"):
        K.csr_matvec(indptr, indices, data, x, shape=6)


def test_format_specific_checks():
    W = random_matrix(6, 20, 0.5)
    x = np.ones(20, np.float32)
    mask, row_ptr, data = bitmap_arrays(W != 0, W)
    with pytest.raises(BadInputError, match=r"mask has shape \(6, 3\); shape \(6, 30\) needs \(6, 4\)"):
        K.bitmap_matvec(mask, row_ptr, data, np.ones(30, np.float32), shape=(6, 30))
    Wn = nm_matrix(6, 20, 2, 4)
    nd, ni = nm_arrays(Wn != 0, Wn, 2, 4)
    with pytest.raises(BadInputError, match=r"m=3 should be one of \[2, 4, 8, 16\]"):
        K.nm_matvec(nd, ni, x, shape=(6, 20), n=2, m=3)
    with pytest.raises(BadInputError, match=r"n=5 should be an integer in \[1, m=4\]"):
        K.nm_matvec(nd, ni, x, shape=(6, 20), n=5, m=4)
    with pytest.raises(BadInputError, match=r"shape \(6, 20\) at 1:4 needs"):
        K.nm_matvec(nd, ni, x, shape=(6, 20), n=1, m=4)
    with pytest.raises(BadInputError, match="slice_height=0 should be a positive integer"):
        K.ell_matvec(np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32),
                     np.zeros(0, np.float32), x, shape=(0, 20), slice_height=0)
    with pytest.raises(BadInputError, match=r"indptr has length 2; shape \(6, 20\) in 4x4 blocks needs 3"):
        K.bsr_matvec(np.zeros(2, np.int32), np.zeros(0, np.int32), np.zeros((0, 4, 4), np.float32), x, shape=(6, 20))


def test_balanced_splits_follow_the_values():
    counts = np.array([1000, 0, 0, 10, 10, 10, 10, 1000, 5, 5], np.int64)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    for nparts in (1, 2, 3, 7, 20):
        b = balanced_splits(ptr, nparts)
        assert b[0] == 0 and b[-1] == counts.size and np.all(np.diff(b) >= 0)
    b = balanced_splits(ptr, 2)
    assert 1 <= b[1] <= 7  # the two heavy rows (0 and 7) land in different parts
    assert list(balanced_splits(np.zeros(1, np.int32), 3)) == [0, 0, 0, 0]


def test_stale_numba_cache_is_dropped_when_helpers_change(tmp_path, monkeypatch):
    from prunebench.kernels import _cache

    (tmp_path / "csr.spmv_csr-27.py311.nbi").write_text("index")
    (tmp_path / "csr.spmv_csr-27.py311.1.nbc").write_text("code")
    (tmp_path / "other.txt").write_text("kept")
    assert _cache.drop_stale_cache(tmp_path)  # no stamp yet: drop
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernel-helpers.sha256", "other.txt"]
    (tmp_path / "csr.spmv_csr-27.py311.nbi").write_text("index")
    assert not _cache.drop_stale_cache(tmp_path)  # same helpers: keep
    assert (tmp_path / "csr.spmv_csr-27.py311.nbi").exists()
    monkeypatch.setattr(_cache, "helpers_digest", lambda: "edited")
    assert _cache.drop_stale_cache(tmp_path)
    assert not (tmp_path / "csr.spmv_csr-27.py311.nbi").exists()
