"""estimate_nbytes against the nbytes() of real encodings, and break-even sparsities against
closed forms worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from .format_cases import make_nm, random_sparse
from prunebench.errors import BadInputError
from prunebench.formats import break_even_sparsity, encode, estimate_nbytes


def nnz_for(shape, s):
    return int(np.floor((1 - s) * shape[0] * shape[1] + 0.5))


EXACT = [
    ("dense", {}), ("coo", {}), ("csr", {}), ("csc", {}), ("bitmap", {}),
    ("csr", {"index_dtype": "int32"}), ("coo", {"index_dtype": "int32"}), ("csc", {"index_dtype": "int32"}),
]


@pytest.mark.parametrize("values", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (300, 7), (64, 64), (3, 70_000)])
@pytest.mark.parametrize("name, opts", EXACT, ids=[f"{n}{o}" for n, o in EXACT])
def test_estimate_is_exact_for_nnz_determined_formats(name, opts, shape, values):
    for s in (0.0, 0.37, 0.9, 1.0):
        W = random_sparse(shape, nnz_for(shape, s), seed=11)
        got = encode(W, name, values=values, **opts).nbytes()
        assert estimate_nbytes(name, shape, s, values=values, **opts) == got, (s, got)


@pytest.mark.parametrize("n, m", [(2, 4), (1, 2), (3, 8), (5, 16)])
@pytest.mark.parametrize("shape", [(8, 64), (5, 37), (1, 3)])
def test_estimate_is_exact_for_nm(n, m, shape):
    W = make_nm(random_sparse(shape, shape[0] * shape[1] // 2, seed=12), n, m)
    s = 1 - np.count_nonzero(W) / W.size
    for values in ("fp32", "int8"):
        want = encode(W, "nm", n=n, m=m, values=values).nbytes()
        assert estimate_nbytes("nm", shape, s, n=n, m=m, values=values) == want


@pytest.mark.parametrize("block", [(4, 4), (1, 8), (3, 5)])
@pytest.mark.parametrize("shape", [(64, 64), (30, 41)])
def test_estimate_is_exact_for_bsr_with_block_pattern(block, shape):
    r, c = block
    R, C = -(-shape[0] // r), -(-shape[1] // c)
    rng = np.random.default_rng(13)
    for s in (0.0, 0.5, 0.93, 1.0):
        keep = np.zeros(R * C, bool)
        keep[rng.choice(R * C, size=nnz_for((R, C), s), replace=False)] = True
        dense_blocks = np.repeat(np.repeat(keep.reshape(R, C), r, axis=0), c, axis=1)
        W = (dense_blocks * rng.uniform(1, 2, dense_blocks.shape)).astype(np.float32)[: shape[0], : shape[1]]
        for values in ("fp32", "fp16"):
            want = encode(W, "bsr", block=block, values=values).nbytes()
            assert estimate_nbytes("bsr", shape, s, block=block, pattern="block", values=values) == want


def test_estimate_is_exact_for_compact_with_row_pattern_and_for_lowrank():
    W = np.zeros((50, 30), np.float32)
    W[[1, 7, 8, 20, 33, 49]] = 1.5
    assert estimate_nbytes("compact", (50, 30), 1 - 6 / 50, pattern="rows") == encode(W, "compact").nbytes()
    W = random_sparse((50, 30), 800, seed=2)
    for values in ("fp32", "int8"):
        assert estimate_nbytes("lowrank", (50, 30), 0.3, rank=7, values=values) == \
            encode(W, "lowrank", rank=7, values=values).nbytes()


@pytest.mark.parametrize("name, opts, tol", [
    ("rcsr", {"bits": 4}, 0.03), ("rcsr", {"bits": 8}, 0.03), ("delta8", {}, 0.03),
    ("bsr", {}, 0.03), ("ell", {"slice_height": 32}, 0.05), ("compact", {}, 0.01),
])
@pytest.mark.parametrize("s", [0.5, 0.9, 0.97])
def test_expected_estimates_are_within_a_few_percent(name, opts, tol, s):
    shape = (256, 1024)
    W = random_sparse(shape, nnz_for(shape, s), seed=14)
    got = encode(W, name, **opts).nbytes()["total"]
    est = estimate_nbytes(name, shape, s, **opts)["total"]
    assert abs(est - got) <= tol * got, (est, got)


@pytest.mark.parametrize("shape", [(300, 64), (100, 300), (3, 70_000)])
def test_rcsr_counts_and_float16_scales_are_exact_in_the_estimate(shape):
    # one count per row, as wide as the narrowest dtype holding cols; 2-byte scales with int8
    W = random_sparse(shape, nnz_for(shape, 0.95), seed=16)
    got = encode(W, "rcsr", bits=8, values="int8").nbytes()
    est = estimate_nbytes("rcsr", shape, 0.95, bits=8, values="int8")
    width = 1 if shape[1] <= 255 else 2 if shape[1] <= 65535 else 4
    assert got["pointers"] == est["pointers"] == shape[0] * width
    assert got["metadata"] == est["metadata"] == 2 * shape[0]


def test_rcsr_filler_formula_against_simulation():
    # expected fillers per row with iid cells: p * sum_t (cols - tL) q^(tL)
    shape, s = (400, 2048), 0.95
    W = random_sparse(shape, nnz_for(shape, s), seed=15)
    fillers = encode(W, "rcsr", bits=4).nfillers
    p, L, cols = 1 - s, 16, shape[1]
    want = shape[0] * sum(p * (cols - t * L) * (1 - p) ** (t * L) for t in range(1, (cols - 1) // L + 1))
    assert fillers == pytest.approx(want, rel=0.03)


N = 4096 * 4096


def test_break_even_csr_int32_is_one_half():
    # 8 bytes per nonzero + 4 * 4097 pointer bytes < 4 N  ->  nnz <= (4N - 4*4097 - 1) // 8
    s = break_even_sparsity("csr", (4096, 4096), index_dtype="int32")
    assert s == pytest.approx(1 - ((4 * N - 4 * 4097 - 1) // 8) / N, abs=1e-12)
    assert abs(s - 0.5) < 0.005


def test_break_even_csr_uint16_is_one_third():
    s = break_even_sparsity("csr", (4096, 4096))          # 4095 fits uint16: 6 bytes per nonzero
    assert s == pytest.approx(1 - ((4 * N - 4 * 4097 - 1) // 6) / N, abs=1e-12)
    assert abs(s - 1 / 3) < 0.005


def test_break_even_bitmap_is_one_thirty_second():
    s = break_even_sparsity("bitmap", (4096, 4096))       # 1 bit per entry = 1/32 of fp32
    assert s == pytest.approx(1 - ((4 * N - N // 8 - 4 * 4097 - 1) // 4) / N, abs=1e-12)
    assert abs(s - 1 / 32) < 0.005


def test_break_even_edge_cases():
    assert break_even_sparsity("dense", (64, 64)) is None                     # never below itself
    # int8 CSR of a full 64x64 matrix: 4096 * (1 + 1) + 65 * 4 + 64 * 4 bytes < 4 * 4096
    assert break_even_sparsity("csr", (64, 64), values="int8") == 0.0
    # N:M cannot be denser than n/m; 2:4 costs 2 * 4 + 2 * 2 / 8 bytes per 4 columns < 16
    assert break_even_sparsity("nm", (64, 64)) == 0.5
    assert break_even_sparsity("nm", (64, 64), n=7, m=8) == 0.125           # 28 + 21/8 < 32 bytes
    assert break_even_sparsity("nm", (64, 64), n=15, m=16) is None          # 60 + 60/8 > 64 bytes
    assert break_even_sparsity("lowrank", (64, 64), rank=8) == 0.0
    assert break_even_sparsity("lowrank", (64, 64), rank=64) is None
    s = break_even_sparsity("bsr", (256, 256), pattern="block")
    assert s == pytest.approx(1 - ((4 * 65536 - 4 * 65 - 1) // (64 + 1)) / 4096)


@pytest.mark.parametrize("name, opts", [("rcsr", {}), ("delta8", {}), ("ell", {}), ("ell", {"slice_height": 8}), ("bsr", {}),
                                        ("coo", {}), ("compact", {})])
def test_break_even_is_where_the_estimate_crosses_dense(name, opts):
    shape = (256, 512)
    s = break_even_sparsity(name, shape, **opts)
    count = round((1 - s) * shape[0] * shape[1])
    dense = shape[0] * shape[1] * 4
    assert estimate_nbytes(name, shape, 1 - count / (shape[0] * shape[1]), **opts)["total"] < dense
    assert estimate_nbytes(name, shape, 1 - (count + 1) / (shape[0] * shape[1]), **opts)["total"] >= dense


@pytest.mark.parametrize("kwargs, msg", [
    ({"format": "csr", "shape": (4, 4), "sparsity": 1.5}, r"sparsity=1.5 should be a number in \[0, 1\]"),
    ({"format": "csr", "shape": (4, 4), "sparsity": 0.5, "pattern": "diag"}, r"pattern='diag' is not allowed"),
    ({"format": "csr", "shape": (4, 4), "sparsity": 0.5, "pattern": "block"}, r"pattern='block' is modelled only for"),
    ({"format": "nm", "shape": (4, 8), "sparsity": 0.25}, r"too dense for 2:4"),
    ({"format": "lowrank", "shape": (4, 8), "sparsity": 0.5}, r"rank=None should be an int in \[1, 4\]"),
    ({"format": "csr", "shape": (4, 0), "sparsity": 0.5}, r"cols=0 should be an int >= 1"),
    ({"format": "csr", "shape": (4, 300), "sparsity": 0.5, "index_dtype": "uint8"}, r"cannot hold column index 299"),
    ({"format": "xyz", "shape": (4, 4), "sparsity": 0.5}, r"unknown format 'xyz'"),
])
def test_estimate_refuses_bad_arguments(kwargs, msg):
    with pytest.raises(BadInputError, match=msg):
        estimate_nbytes(**kwargs)


def test_break_even_refuses_unknown_options():
    with pytest.raises(BadInputError, match="unknown option.*blok"):
        break_even_sparsity("bsr", (8, 8), blok=(2, 2))
