"""The generic suite: every format configuration in format_cases.CASES gets every test here."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings

from .format_cases import CASES, INDEXED, LOSSLESS, canonical_bits, make_nm, matrices, random_sparse
from prunebench.errors import BadInputError, FormatError
from prunebench.formats import FORMATS, VALUE_ENCODINGS, encode

F32 = np.finfo(np.float32)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ids(cases):
    return [c.id for c in cases]


def narrowest(limit: int) -> np.dtype:
    """The documented rule, stated independently of the package."""
    return np.dtype("uint8" if limit < 2**8 else "uint16" if limit < 2**16 else "int32")


def sample(case, shape=(13, 29), nnz=150, seed=3):
    return case.prepare(random_sparse(shape, nnz, seed))


def test_every_registered_format_has_a_case():
    assert {c.name for c in CASES} == set(FORMATS.names())


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("case", LOSSLESS, ids=ids(LOSSLESS))
@PROPERTY
@given(W=matrices())
def test_lossless_round_trip_is_bit_exact(case, W):
    W = case.prepare(W)
    fmt = case.encode(W)
    D = fmt.to_dense()
    assert D.dtype == np.float32 and D.shape == W.shape == fmt.shape
    assert fmt.lossless and fmt.values == "fp32"
    np.testing.assert_array_equal(canonical_bits(D), canonical_bits(W))
    if case.keeps_signed_zero:
        np.testing.assert_array_equal(D.view(np.uint32), W.view(np.uint32))
    assert fmt.error_vs(W) == {"max_abs": 0.0, "rel_fro": 0.0}


@pytest.mark.parametrize("index_dtype", [None, "uint8", "uint16", "int32"])
@pytest.mark.parametrize("case", INDEXED, ids=ids(INDEXED))
@FEW
@given(W=matrices(max_rows=300, max_cols=300))
def test_every_index_width_round_trips_or_is_refused(case, index_dtype, W):
    limits = case.index_limits(*W.shape)
    if index_dtype is not None and max(limits.values()) > np.iinfo(index_dtype).max:
        with pytest.raises(BadInputError, match=f"index_dtype='{index_dtype}' cannot hold"):
            case.encode(W, index_dtype=index_dtype)
        return
    fmt = case.encode(W, index_dtype=index_dtype)
    for name, limit in limits.items():
        assert getattr(fmt, name).dtype == (np.dtype(index_dtype) if index_dtype else narrowest(limit)), name
    np.testing.assert_array_equal(canonical_bits(fmt.to_dense()), canonical_bits(W))


@pytest.mark.parametrize("shape", [(3, 70_001), (70_001, 2)])
@pytest.mark.parametrize("case", LOSSLESS, ids=ids(LOSSLESS))
def test_dimensions_past_65536_round_trip_with_int32_indices(case, shape):
    W = case.prepare(random_sparse(shape, 600, seed=1))
    W[-1, -1] = 3.0                   # the very last index must survive
    fmt = case.encode(W)
    np.testing.assert_array_equal(canonical_bits(fmt.to_dense()), canonical_bits(W))
    for name, limit in (case.index_limits(*shape) if case.index_limits else {}).items():
        assert getattr(fmt, name).dtype == narrowest(limit), name


@pytest.mark.parametrize("values", VALUE_ENCODINGS)
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_arrays_and_meta_rebuild_the_object(case, values):
    fmt = case.encode(sample(case), values=values)
    arrays = {k: v.copy() for k, v in fmt.arrays().items()}
    meta = json.loads(json.dumps(fmt.meta()))
    back = type(fmt).from_arrays(arrays, meta)
    assert back.meta() == fmt.meta() and back.values == values and back.shape == (13, 29)
    for k, a in fmt.arrays().items():
        assert back.arrays()[k].dtype == a.dtype and np.array_equal(back.arrays()[k], a), k
        assert a.flags.c_contiguous and back.arrays()[k].flags.c_contiguous, k   # kernels need it
    strided = type(fmt).from_arrays({k: np.repeat(v, 2, axis=0)[::2] for k, v in arrays.items()}, meta)
    assert all(a.flags.c_contiguous for a in strided.arrays().values())
    np.testing.assert_array_equal(back.to_dense().view(np.uint32), fmt.to_dense().view(np.uint32))
    want = set() if values != "int8" else {"u_scales", "v_scales"} if case.name == "lowrank" else {"scales"}
    assert {k for k in arrays if k.endswith("scales")} == want


@pytest.mark.parametrize("values", VALUE_ENCODINGS)
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_nbytes_counts_every_stored_array_once(case, values):
    W = sample(case)
    fmt = case.encode(W, values=values)
    nb = fmt.nbytes()
    assert set(nb) == {"values", "indices", "pointers", "metadata", "total"}
    assert all(type(v) is int for v in nb.values())
    assert nb["total"] == sum(a.nbytes for a in fmt.arrays().values())
    assert nb["total"] == nb["values"] + nb["indices"] + nb["pointers"] + nb["metadata"]
    rows = 13
    if values == "int8":      # sample() values are in [0.5, 2]: float16 scales fit
        per_scale = 2 if case.half_scales else 4
        assert nb["metadata"] == per_scale * (rows + fmt.rank if case.name == "lowrank" else rows)
    else:
        assert nb["metadata"] == 0
    item = {"fp32": 4, "fp16": 2, "int8": 1}[values]
    assert nb["values"] % item == 0
    if case.name != "lowrank":      # every nonzero of W is stored once at least
        assert nb["values"] >= item * np.count_nonzero(W)


# ------------------------------------------------------------------ value encodings


@pytest.mark.parametrize("case", LOSSLESS, ids=ids(LOSSLESS))
@PROPERTY
@given(W=matrices())
@example(W=np.array([[1.0049e-41]], np.float32))        # subnormal scale: rounding must not clip
@example(W=np.array([[F32.max, -F32.max, 1.0]], np.float32))  # 127 * scale must stay finite
def test_int8_error_is_at_most_half_a_row_scale(case, W):
    W = case.prepare(W)
    fmt = case.encode(W, values="int8")
    assert not fmt.lossless and type(fmt).lossless
    amax = np.abs(W.astype(np.float64)).max(axis=1)
    # scale = max|row| / 127 rounded to float32 (within two ulps), 1.0 for a zero row
    want = np.where(amax == 0, 1.0, np.maximum(amax / 127, F32.smallest_subnormal))
    if case.half_scales and fmt.scales.dtype == np.float16:
        # rounded up to a normal float16: never below the float32 rule, at most 2**-10 above
        got = fmt.scales.astype(np.float64)
        assert (got >= want).all() and (got <= want * (1 + 2.0**-10)).all()
        assert (fmt.scales >= np.finfo(np.float16).smallest_normal).all()
    else:
        assert fmt.scales.dtype == np.float32
        np.testing.assert_allclose(fmt.scales, want, rtol=3e-7, atol=2 * F32.smallest_subnormal)
    err = np.abs(fmt.to_dense().astype(np.float64) - W)
    bound = fmt.scales.astype(np.float64)[:, None] / 2 * (1 + 1e-5) + 2 * float(F32.smallest_subnormal)
    assert (err <= bound).all(), float((err - bound).max())
    assert fmt.error_vs(W)["max_abs"] == pytest.approx(err.max(), rel=1e-12, abs=0)


@pytest.mark.parametrize("case", LOSSLESS, ids=ids(LOSSLESS))
@PROPERTY
@given(W=matrices())
def test_fp16_matches_numpy_half_rounding(case, W):
    W = case.prepare(np.clip(W, -60000, 60000))
    fmt = case.encode(W, values="fp16")
    assert not fmt.lossless
    D = fmt.to_dense()
    np.testing.assert_array_equal(canonical_bits(D), canonical_bits(W.astype(np.float16).astype(np.float32)))
    err = np.abs(D.astype(np.float64) - W)
    assert (err <= 2.0**-11 * np.abs(W.astype(np.float64)) + 2.0**-25).all()


def test_fp16_overflow_is_refused():
    with pytest.raises(BadInputError, match="values='fp16' cannot represent .*70000"):
        encode(np.array([[70000.0]], np.float32), "csr", values="fp16")


def test_int8_scales_are_per_row_of_w_in_column_major_formats():
    W = np.array([[0, 127.0, 0], [2.54, 0, 0.01]], np.float32)
    for name in ("csc", "csr", "coo", "dense"):
        fmt = encode(W, name, values="int8")
        np.testing.assert_allclose(fmt.scales, [1.0, 0.02], rtol=1e-7)
        np.testing.assert_allclose(fmt.to_dense(), [[0, 127, 0], [2.54, 0, 0.0]], atol=0.01 + 1e-7)


def test_lowrank_error_matches_eckart_young():
    rng = np.random.default_rng(5)
    W = (rng.standard_normal((40, 8)) @ rng.standard_normal((8, 30))
         + 0.01 * rng.standard_normal((40, 30))).astype(np.float32)
    s = np.linalg.svd(W.astype(np.float64), compute_uv=False)
    for rank in (1, 5, 8, 30):
        fmt = encode(W, "lowrank", rank=rank)
        assert fmt.u.shape == (40, rank) and fmt.v.shape == (rank, 30) and not fmt.lossless
        want = np.sqrt(np.sum(s[rank:] ** 2)) / np.linalg.norm(s)
        assert fmt.error_vs(W)["rel_fro"] == pytest.approx(want, rel=1e-3, abs=1e-6)
    # energy picks the smallest rank keeping that fraction of sum(s**2)
    frac = np.cumsum(s**2) / np.sum(s**2)
    for energy in (0.5, 0.999, 0.9999999, 1.0):
        assert encode(W, "lowrank", energy=energy).rank == int(np.argmax(frac >= energy - 1e-12)) + 1
    q = encode(W, "lowrank", rank=8, values="int8")
    assert q.u_scales.shape == (40,) and q.v_scales.shape == (8,)
    assert q.error_vs(W)["rel_fro"] < 0.02


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bad_matrices_and_options_are_refused_naming_the_argument(case):
    bad = [(np.ones(5, np.float32), "2-D"), (np.ones((2, 2, 2), np.float32), "2-D"),
           (np.ones((2, 2)), "dtype float32, got float64"), (np.zeros((0, 3), np.float32), "at least 1 row"),
           (np.array([[1, np.nan]], np.float32), "finite, got nan at row 0, column 1"),
           (np.array([[0], [-np.inf]], np.float32), "finite, got -inf at row 1, column 0")]
    for W, msg in bad:
        with pytest.raises(BadInputError, match=msg):
            case.encode(W)
    good = sample(case)
    with pytest.raises(BadInputError, match="values='int4' is not allowed; allowed: fp32, fp16, int8"):
        case.encode(good, values="int4")
    with pytest.raises(BadInputError, match="unknown option.* frobnicate"):
        case.encode(good, frobnicate=1)
    if case.index_limits:
        with pytest.raises(BadInputError,
                           match="index_dtype='int64' is not allowed; allowed: None, uint8, uint16, int32"):
            case.encode(good, index_dtype="int64")
    else:
        with pytest.raises(BadInputError, match="index_dtype='int32' is not used"):
            case.encode(good, index_dtype="int32")


@pytest.mark.parametrize("name, opts, msg", [
    ("bsr", {"block": (0, 4)}, r"block=\(0, 4\) should be a pair of ints >= 1"),
    ("bsr", {"block": 4}, r"block=4 should be a pair"),
    ("rcsr", {"bits": 5}, r"bits=5 is not allowed; allowed: 4, 8"),
    ("nm", {"m": 3}, r"m=3 is not allowed; allowed: 2, 4, 8, 16"),
    ("nm", {"n": 4, "m": 4}, r"n=4 should be an int in \[1, 3\]"),
    ("nm", {"n": 0}, r"n=0 should be an int in \[1, 3\]"),
    ("ell", {"slice_height": 0}, r"slice_height=0 should be an int >= 1"),
    ("lowrank", {}, r"pass exactly one of rank="),
    ("lowrank", {"rank": 2, "energy": 0.5}, r"pass exactly one of rank="),
    ("lowrank", {"rank": 9}, r"rank=9 should be an int in \[1, 8\]"),
    ("lowrank", {"energy": 1.5}, r"energy=1.5 should be a float in \(0, 1\]"),
])
def test_bad_format_options_are_refused(name, opts, msg):
    with pytest.raises(BadInputError, match=f"{name}: {msg}"):
        encode(np.eye(8, dtype=np.float32), name, **opts)


def test_nm_refuses_a_matrix_that_is_not_nm_sparse_and_names_the_group():
    W = make_nm(random_sparse((6, 10), 40, seed=7), 2, 4)
    W[4, 5:8] = 1.0                     # group 1 of row 4: columns 4..7
    with pytest.raises(BadInputError, match=r"row 4, group 1 \(columns 4..7\) has [34] nonzeros, more than n=2"):
        encode(W, "nm")
    W2 = np.zeros((2, 10), np.float32)
    W2[1, 8:10] = 1.0                   # padded last group (columns 8..9) with 2 nonzeros is fine for 2:4 ...
    encode(W2, "nm")
    with pytest.raises(BadInputError, match=r"row 1, group 2 \(columns 8..9\)"):
        encode(W2, "nm", n=1, m=4)      # ... but not for 1:4


def test_unknown_format_lists_the_valid_ones():
    with pytest.raises(BadInputError, match="unknown format 'csx'; valid: .*bitmap.*csr"):
        encode(np.eye(2, dtype=np.float32), "csx")


# ------------------------------------------------------------------ corruption


@pytest.mark.parametrize("values", ["fp32", "int8"])
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_check_catches_truncated_retyped_missing_and_extra_arrays(case, values):
    fmt = case.encode(sample(case), values=values)
    cls, arrays, meta = type(fmt), fmt.arrays(), fmt.meta()
    for name, a in arrays.items():
        assert len(a) > 0, name
        with pytest.raises(FormatError, match=f"^{case.name}: "):
            cls.from_arrays({**arrays, name: a[:-1]}, meta)
        with pytest.raises(FormatError, match=f"^{case.name}: {name} .*float64"):
            cls.from_arrays({**arrays, name: a.astype(np.float64)}, meta)
        with pytest.raises(FormatError, match="arrays"):
            cls.from_arrays({k: v for k, v in arrays.items() if k != name}, meta)
    with pytest.raises(FormatError, match="arrays"):
        cls.from_arrays({**arrays, "bogus": np.zeros(1)}, meta)
    with pytest.raises(FormatError, match="meta keys"):
        cls.from_arrays(arrays, {k: v for k, v in meta.items() if k != "shape"})
    with pytest.raises(FormatError, match="meta shape"):
        cls.from_arrays(arrays, {**meta, "shape": [13, -29]})
    with pytest.raises(FormatError, match="meta values"):
        cls.from_arrays(arrays, {**meta, "values": "fp8"})
