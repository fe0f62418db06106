"""The panel kernels (row groups of 16, column panels of 32, in-register permutes) against dense
float64 math, on arrays built here entry by entry from the layout's definition (not by
``prunebench.formats``), and the format's encoder against the same builder."""
from __future__ import annotations

import numpy as np
import pytest

from prunebench.formats.panel import PanelFormat
from prunebench.kernels.panel import panel_left, panel_matmul, panel_matvec, panel_reference

from .kernel_builders import RTOL, encode_values, random_matrix


def panel_arrays(P, V):
    """(chunks, group_ptr, value_ptr, offsets, data) of pattern P holding V's values, written
    loop by loop from the layout: per group of 16 rows and panel of 32 columns, chunk k takes
    the k-th entry of every row that has one."""
    rows, cols = P.shape
    chunks, group_ptr, value_ptr, offsets, data = [], [0], [0], [], []
    for g in range(-(-rows // 16)):
        for p in range(-(-cols // 32)):
            lists = [[c for c in range(32 * p, min(32 * p + 32, cols)) if P[r, c]]
                     if r < rows else [] for r in range(16 * g, 16 * g + 16)]
            for k in range(max(len(lst) for lst in lists)):
                mask = 0
                for lane, lst in enumerate(lists):
                    if k < len(lst):
                        mask |= 1 << lane
                        offsets.append(lst[k] - 32 * p)
                        data.append(V[16 * g + lane, lst[k]])
                chunks.append(mask | p << 16)
        group_ptr.append(len(chunks))
        value_ptr.append(len(data))
    return (np.array(chunks, np.uint32), np.array(group_ptr, np.int32), np.array(value_ptr, np.int32),
            np.array(offsets, np.uint8), np.array(data, V.dtype).reshape(-1))


SHAPES = [(1, 1), (16, 32), (17, 33), (37, 70), (100, 64), (5, 300), (300, 5), (129, 257)]


def _tolerance(D, x):
    return RTOL * (np.abs(D) @ np.abs(x)) + 1e-30


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sparsity", [0.0, 0.6, 0.95])
@pytest.mark.parametrize("kind", ["float32", "float16", "int8"])
def test_panel_products_match_dense_math(shape, sparsity, kind):
    W = random_matrix(*shape, sparsity, seed=shape[0] + shape[1])
    V, scales, D = encode_values(W, kind)
    arrays = panel_arrays(W != 0, V)
    rng = np.random.default_rng(1)
    bias = rng.standard_normal(shape[0]).astype(np.float32)
    x = rng.standard_normal(shape[1]).astype(np.float32)
    y = panel_matvec(*arrays, x, shape=shape, scales=scales, bias=bias)
    assert (np.abs(y - (D @ x + bias)) <= _tolerance(D, x) + 1e-6).all()
    ref = panel_reference(*arrays, x, shape=shape, scales=scales, bias=bias)
    np.testing.assert_allclose(ref, D @ x + bias, rtol=1e-12, atol=1e-12)
    for batch in (2, 9, 33):
        X = rng.standard_normal((batch, shape[1])).astype(np.float32)
        Y = panel_matmul(*arrays, X, shape=shape, scales=scales, bias=bias)
        assert (np.abs(Y - (X @ D.T + bias)) <= _tolerance(D, X.T).T + 1e-6).all()
        Z = panel_left(*arrays, np.ascontiguousarray(X.T), shape=shape, scales=scales, bias=bias)
        assert (np.abs(Z - (D @ X.T + bias[:, None])) <= _tolerance(D, X.T) + 1e-6).all()


def test_a_chunk_of_sixteen_lanes_and_rows_with_a_whole_panel():
    """Every lane of a chunk set (16 rows each with an entry), and rows holding all 32 columns
    of a panel (32 chunks), on inputs whose panel is the last, partial one."""
    W = np.arange(1, 16 * 45 + 1, dtype=np.float32).reshape(16, 45) / 100
    V, _, D = encode_values(W, "float32")
    arrays = panel_arrays(W != 0, V)
    assert len(arrays[0]) == 32 + 13 and (arrays[0] & 0xFFFF == 0xFFFF).all()
    x = np.linspace(-1, 1, 45, dtype=np.float32)
    np.testing.assert_allclose(panel_matvec(*arrays, x, shape=W.shape), D @ x, rtol=1e-5)


@pytest.mark.parametrize("values", ["fp32", "fp16", "int8"])
def test_the_format_encodes_the_layout_the_kernels_read(values):
    W = random_matrix(70, 100, 0.8, seed=3)
    F = PanelFormat.from_dense(W, values=values)
    expected = panel_arrays(W != 0, W)
    for name, want in zip(("chunks", "group_ptr", "value_ptr", "offsets"), expected[:4]):
        np.testing.assert_array_equal(getattr(F, name), want, err_msg=name)
    if values == "fp32":
        np.testing.assert_array_equal(F.data, expected[4])
    x = np.random.default_rng(2).standard_normal(100).astype(np.float32)
    a = F.arrays()
    y = panel_matvec(a["chunks"], a["group_ptr"], a["value_ptr"], a["offsets"], a["data"], x,
                     shape=W.shape, scales=a.get("scales"))
    D = F.to_dense().astype(np.float64)
    assert (np.abs(y - D @ x) <= _tolerance(D, x) + 1e-6).all(), values
