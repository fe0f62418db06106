"""Fuzzing the untrusted-input doors with hypothesis: mutated copies of real files fed to
``formats.load_container`` and ``runtime.load_model`` (bytes flipped in the safetensors header /
JSON and in tensor data, truncation, random bytes) and mutated arrays / meta fed to every
``Format.from_arrays``. Each input either loads or raises a PrunebenchError subclass with a
message; never another exception type or a hang (SIGALRM guard). Whatever loads is run through
``to_dense()`` and, for formats with a kernel, through ``prunebench.kernels.<fmt>_matvec``,
compared with ``to_dense() @ x``: a mutation that passes ``check()`` cannot make a kernel read
or write out of bounds."""
from __future__ import annotations

import json
import signal
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunebench.errors import PrunebenchError
from prunebench.formats import FORMATS, encode, load_container, save_container

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
KERNEL_FORMATS = ("csr", "delta8", "bsr", "bitmap", "nm", "ell", "cbcsr")
TMP = Path(tempfile.mkdtemp(prefix="pb-fuzz-"))


@contextmanager
def no_hang(seconds: int = 20):
    def boom(*_):
        raise AssertionError(f"no answer within {seconds} s (hang)")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _matrix() -> np.ndarray:
    """12x16, 2:4 along the input dimension (so nm encodes it), one all-zero column block."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((12, 16)).astype(np.float32)
    for r in range(12):
        for g in range(4):
            W[r, g * 4 + rng.choice(4, 2, replace=False)] = 0
    W[:, 8:12] = 0
    return W


W = _matrix()


def _encoded(name: str, values: str):
    return encode(W, name, values=values, **({"rank": 3} if name == "lowrank" else {}))


def _exercise(fmt) -> None:
    """A format object that loaded: densify it and run its kernel against the dense product."""
    with np.errstate(all="ignore"):
        D = fmt.to_dense()
        assert D.shape == tuple(fmt.shape)
        if fmt.name not in KERNEL_FORMATS or 0 in D.shape:
            return
        from prunebench.runtime.ops import kernel_call as _kernel_call

        arrays, (matvec, *_), opts = _kernel_call(fmt)
        if fmt.values == "int8":
            opts["scales"] = np.ascontiguousarray(fmt.scales, dtype=np.float32)
        x = np.linspace(-1, 1, D.shape[1]).astype(np.float32)
        try:
            y = matvec(*arrays, x, shape=tuple(fmt.shape), **opts)
        except PrunebenchError:
            return  # the kernel's own shape/dtype checks refused it: fine
        ref = D.astype(np.float64) @ x.astype(np.float64)
        finite = np.isfinite(ref) & (np.abs(ref) < 1e30)
        np.testing.assert_allclose(y[finite], ref[finite], rtol=1e-3, atol=1e-3 * (
            1 + np.abs(D[np.isfinite(D)]).max(initial=0) * D.shape[1]))


def _load_or_refuse(load, *args):
    with no_hang():
        try:
            return load(*args)
        except PrunebenchError as e:
            assert str(e).strip(), "an error without a message"
            return None


# ---------------------------------------------------------------- container bytes


def _container_bytes() -> bytes:
    layers = {}
    for name in FORMATS:
        for values in ("fp32", "int8"):
            layers[f"{name}_{values}"] = _encoded(name, values)
    path = TMP / "all.pbc"
    save_container(path, layers, extra={"bias": np.arange(12, dtype=np.float32)},
                   manifest={"note": "fuzz"})
    return path.read_bytes()


ORIGINAL = _container_bytes()
HEADER_END = 8 + struct.unpack("<Q", ORIGINAL[:8])[0]


def _mutations(region: tuple[int, int]):
    lo, hi = region
    return st.lists(st.tuples(st.integers(lo, hi - 1), st.integers(0, 255)),
                    min_size=1, max_size=8)


def _apply(data: bytes, muts) -> bytes:
    b = bytearray(data)
    for pos, val in muts:
        b[pos] = val
    return bytes(b)


def _check_container(blob: bytes) -> None:
    path = TMP / "mutant.pbc"
    path.write_bytes(blob)
    got = _load_or_refuse(load_container, path)
    if got is not None:
        layers, extra, manifest = got
        for fmt in layers.values():
            _exercise(fmt)


@settings(max_examples=120, **SETTINGS)
@given(muts=_mutations((0, HEADER_END)))
def test_container_header_mutations(muts):
    _check_container(_apply(ORIGINAL, muts))


@settings(max_examples=80, **SETTINGS)
@given(muts=_mutations((HEADER_END, len(ORIGINAL))))
def test_container_tensor_data_mutations(muts):
    _check_container(_apply(ORIGINAL, muts))


@settings(max_examples=60, **SETTINGS)
@given(cut=st.integers(0, len(ORIGINAL) - 1), junk=st.binary(max_size=64))
def test_container_truncated_or_random(cut, junk):
    _check_container(ORIGINAL[:cut] + junk)
    _check_container(junk)


def _header_json() -> dict:
    return json.loads(json.loads(ORIGINAL[8:HEADER_END])["__metadata__"]["prunebench"])


def _rewrite_header(doc: dict) -> bytes:
    """The original file with its prunebench JSON replaced (tensor offsets unchanged)."""
    head = json.loads(ORIGINAL[8:HEADER_END])
    head["__metadata__"]["prunebench"] = json.dumps(doc)
    text = json.dumps(head).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + ORIGINAL[HEADER_END:]


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40)
                       | st.floats(allow_nan=True) | st.text(max_size=8),
                       lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c,
                                                                            max_size=3),
                       max_leaves=6)


@settings(max_examples=120, **SETTINGS)
@given(layer=st.sampled_from(sorted(_header_json()["layers"])),
       key=st.sampled_from(["meta", "arrays", "shape", "values", "block", "n", "m",
                            "slice_height", "rank", "bits", "nfillers"]),
       value=JSONISH)
def test_container_header_json_fields(layer, key, value):
    """Well-formed JSON with a wrong value in one field of one layer's entry."""
    doc = _header_json()
    entry = doc["layers"][layer]
    if key in ("format", "meta", "arrays"):
        entry[key] = value
    else:
        entry["meta"][key] = value
    _check_container(_rewrite_header(doc))


@pytest.mark.parametrize("value", ["csr2", 7, None, [], {"a": 1}])
def test_container_header_format_field(value):
    """The layer's ``format`` field: a string naming no format is refused; so must be a
    non-string, unhashable ones included."""
    doc = _header_json()
    doc["layers"]["csr_fp32"]["format"] = value
    _check_container(_rewrite_header(doc))


def test_container_header_unhashable_format_is_a_format_error():
    doc = _header_json()
    doc["layers"]["csr_fp32"]["format"] = []
    path = TMP / "unhashable.pbc"
    path.write_bytes(_rewrite_header(doc))
    with pytest.raises(PrunebenchError):
        load_container(path)


# ---------------------------------------------------------------- model file


@pytest.fixture(scope="module")
def model_file() -> bytes:
    from prunebench import zoo
    from prunebench.pruning import prune
    from prunebench.runtime import save_model

    torch.manual_seed(0)
    net = zoo.get_spec("digits-lenet300").build()
    pruned = prune(net, "magnitude", 0.8).model
    path = TMP / "lenet.pbm"
    save_model(path, pruned, zoo_name="digits-lenet300", format="csr")
    return path.read_bytes()


@settings(max_examples=80, **SETTINGS)
@given(data=st.data())
def test_load_model_mutations(model_file, data):
    from prunebench.runtime import load_model

    end = 8 + struct.unpack("<Q", model_file[:8])[0]
    region = data.draw(st.sampled_from([(0, end), (end, len(model_file))]))
    blob = _apply(model_file, data.draw(_mutations(region)))
    path = TMP / "mutant.pbm"
    path.write_bytes(blob)
    got = _load_or_refuse(load_model, path)
    if got is not None:
        model, info = got
        with torch.inference_mode():
            model(torch.zeros(2, 64))


# ---------------------------------------------------------------- from_arrays

DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64, np.uint64, np.float16,
          np.float32, np.float64, np.bool_]


@st.composite
def mutated_arrays(draw):
    name = draw(st.sampled_from(sorted(FORMATS)))
    values = draw(st.sampled_from(["fp32", "fp16", "int8"]))
    fmt = _encoded(name, values)
    arrays = {k: a.copy() for k, a in fmt.arrays().items()}
    meta = json.loads(json.dumps(fmt.meta()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["element", "element", "element", "dtype", "shape",
                                     "random", "drop", "meta"]))
        key = draw(st.sampled_from(sorted(arrays)))
        a = arrays[key]
        if kind == "element" and a.size:
            i = draw(st.integers(0, a.size - 1))
            flat = a.reshape(-1)
            if a.dtype.kind in "iu":
                info = np.iinfo(a.dtype)
                flat[i] = draw(st.integers(int(info.min), int(info.max)))
            elif a.dtype.kind == "f":
                with np.errstate(over="ignore"):  # 1e38 in float16 is inf: wanted
                    flat[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e38, -3.5]))
        elif kind == "dtype":
            arrays[key] = a.astype(draw(st.sampled_from(DTYPES)))
        elif kind == "shape":
            arrays[key] = a.reshape(-1)[: draw(st.integers(0, a.size))]
        elif kind == "random":
            n = draw(st.integers(0, 40))
            dt = draw(st.sampled_from(DTYPES))
            raw = draw(st.binary(min_size=n * np.dtype(dt).itemsize,
                                 max_size=n * np.dtype(dt).itemsize))
            arrays[key] = np.frombuffer(raw, dtype=dt).copy()
        elif kind == "drop":
            del arrays[key]
            if not arrays:
                arrays["x"] = np.zeros(1, np.float32)
        else:
            mk = draw(st.sampled_from(sorted(meta)))
            meta[mk] = draw(st.one_of(JSONISH, st.integers(-5, 40),
                                      st.lists(st.integers(-2, 40), max_size=3)))
    return name, arrays, meta


@settings(max_examples=400, **SETTINGS)
@given(case=mutated_arrays())
def test_from_arrays_mutations(case):
    name, arrays, meta = case
    fmt = _load_or_refuse(FORMATS.get(name).from_arrays, arrays, meta)
    if fmt is not None:
        _exercise(fmt)


def test_from_arrays_unmutated_round_trip():
    """The fuzz baseline: every format's own arrays load and match (kernels included)."""
    for name in FORMATS:
        for values in ("fp32", "fp16", "int8"):
            fmt = _encoded(name, values)
            back = FORMATS.get(name).from_arrays(fmt.arrays(), fmt.meta())
            np.testing.assert_array_equal(back.to_dense(), fmt.to_dense())
            _exercise(back)
