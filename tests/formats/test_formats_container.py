"""Model container: round trip, byte accounting, and every way a file can be broken."""
from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from .format_cases import CASES, random_sparse
from prunebench.errors import BadInputError, FormatError
from prunebench.formats import encode, inspect_container, load_container, save_container


def layers():
    out = {}
    for i, case in enumerate(CASES):
        W = case.prepare(random_sparse((12, 40), 150, seed=20 + i))
        out[f"layer{i}.{case.name}"] = case.encode(W, values=("fp32", "fp16", "int8")[i % 3])
    return out


EXTRA = {"fc1.bias": np.arange(12, dtype=np.float32), "steps": np.array([3], np.int64)}
MANIFEST = {"model": "digits-lenet300", "sparsity": 0.9, "layers_order": ["a", "b"]}


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.pbz"
    ls = layers()
    save_container(path, ls, EXTRA, MANIFEST)
    return path, ls


def test_round_trip_keeps_every_array_meta_and_manifest(saved):
    path, ls = saved
    back, extra, manifest = load_container(path)
    assert manifest == MANIFEST and list(back) == list(ls)
    for name, fmt in ls.items():
        got = back[name]
        assert type(got) is type(fmt) and got.meta() == fmt.meta()
        for k, a in fmt.arrays().items():
            assert got.arrays()[k].dtype == a.dtype and np.array_equal(got.arrays()[k], a), (name, k)
        np.testing.assert_array_equal(got.to_dense().view(np.uint32), fmt.to_dense().view(np.uint32))
    assert set(extra) == set(EXTRA)
    for k, a in EXTRA.items():
        assert extra[k].dtype == a.dtype and np.array_equal(extra[k], a)
    assert [p.name for p in path.parent.iterdir()] == ["model.pbz"]       # no temp file left behind


def test_inspect_reports_bytes_that_add_up_to_the_file(saved):
    path, ls = saved
    info = inspect_container(path)
    size = os.path.getsize(path)
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    tensor_bytes = (sum(a.nbytes for f in ls.values() for a in f.arrays().values())
                    + sum(a.nbytes for a in EXTRA.values()))
    assert info["file_bytes"] == size == 8 + header_len + tensor_bytes
    assert info["header_bytes"] == 8 + header_len == info["container_overhead"]
    assert info["extra_bytes"] == 12 * 4 + 8
    assert info["nbytes"] == sum(f.nbytes()["total"] for f in ls.values())
    assert info["dense_fp32_bytes"] == len(ls) * 12 * 40 * 4
    some = next(iter(ls))
    assert info["layers"][some] == {
        "format": ls[some].name, "shape": [12, 40], "values": ls[some].values, "lossless": ls[some].lossless,
        "meta": ls[some].meta(), "nbytes": ls[some].nbytes(), "dense_fp32_bytes": 12 * 40 * 4}
    assert info["manifest"] == MANIFEST


def test_missing_file_is_a_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="model file .*nope.pbz does not exist"):
        load_container(tmp_path / "nope.pbz")


def test_truncated_file_is_refused(saved):
    path, _ = saved
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 12, 3):
        path.write_bytes(data[:cut])
        with pytest.raises(FormatError, match=f"file {path} is not a prunebench model file"):
            load_container(path)


def test_corrupted_header_is_refused(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    bad_json = data.copy()
    bad_json[8] = ord("[")                      # JSON header no longer an object
    path.write_bytes(bytes(bad_json))
    with pytest.raises(FormatError, match="not a prunebench model file"):
        load_container(path)
    bad_len = data.copy()
    bad_len[:8] = struct.pack("<Q", 2**40)      # header length past the end of the file
    path.write_bytes(bytes(bad_len))
    with pytest.raises(FormatError, match="not a prunebench model file"):
        load_container(path)


def _write_raw(path, tensors, header):
    save_file(tensors, str(path), metadata={"prunebench": header if isinstance(header, str) else json.dumps(header)})


def _csr_header(arrays, fmt="csr", **extra):
    return {"version": 1, "manifest": {}, "layers": {"fc1": {"format": fmt, "meta": {"shape": [2, 3], "values": "fp32"},
                                                              "arrays": arrays, **extra}}}


CSR = {"fc1::indptr": np.array([0, 1, 2], np.int32), "fc1::indices": np.array([2, 0], np.uint8),
       "fc1::data": np.array([1.0, 2.0], np.float32)}


def test_a_hand_written_file_loads(tmp_path):
    path = tmp_path / "m.pbz"
    _write_raw(path, CSR, _csr_header(["indptr", "indices", "data"]))
    layers_, _, _ = load_container(path)
    np.testing.assert_array_equal(layers_["fc1"].to_dense(), [[0, 0, 1], [2, 0, 0]])


@pytest.mark.parametrize("tensors, header, msg", [
    (CSR, _csr_header(["indptr", "indices"]),
     r"layer 'fc1': header lists arrays \['indptr', 'indices'\] but the file holds \['data', 'indices', 'indptr'\]"),
    ({k: v for k, v in CSR.items() if k != "fc1::data"}, _csr_header(["indptr", "indices", "data"]),
     r"layer 'fc1': header lists arrays .* but the file holds \['indices', 'indptr'\]"),
    (CSR, _csr_header(["indptr", "indices", "data"], fmt="blocked-ell"),
     r"layer 'fc1': unknown format 'blocked-ell'; valid: "),
    ({**CSR, "fc1::indices": np.array([3, 0], np.uint8)}, _csr_header(["indptr", "indices", "data"]),
     r"layer 'fc1': csr: column index 3 out of range for 3 columns in row 0"),
    ({**CSR, "fc2::data": np.zeros(1, np.float32)}, _csr_header(["indptr", "indices", "data"]),
     r"tensors of layer\(s\) 'fc2' are not listed in the header"),
    ({**CSR, "loose": np.zeros(1, np.float32)}, _csr_header(["indptr", "indices", "data"]),
     r"tensor 'loose' is not named 'layer::array'"),
    (CSR, {"version": 2, "manifest": {}, "layers": {}}, r"prunebench header version 2, expected 1"),
    (CSR, "{not json", r"the prunebench header is not valid JSON"),
    (CSR, {"version": 1, "layers": {}}, r"needs a 'layers' dict and a 'manifest' dict"),
    (CSR, {"version": 1, "manifest": {}, "layers": {"fc1": {"format": "csr", "arrays": []}}},
     r"layer 'fc1': header entry should have keys format, meta, arrays"),
    (CSR, _csr_header(["indptr", "indices", "data"]) | {"layers": {"fc1": {
        "format": "csr", "meta": {"shape": [2, 3]}, "arrays": ["indptr", "indices", "data"]}}},
     r"layer 'fc1': csr: meta keys"),
])
def test_inconsistent_files_are_refused_naming_the_layer(tmp_path, tensors, header, msg):
    path = tmp_path / "m.pbz"
    _write_raw(path, tensors, header)
    with pytest.raises(FormatError, match=msg):
        load_container(path)


def test_safetensors_file_without_prunebench_header_is_refused(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(FormatError, match=r"is not a prunebench model file: no 'prunebench' entry"):
        load_container(path)


class _Trap:
    """Unpickling this object creates a marker file: the test fails if anything unpickles it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_files_are_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"fc1": _Trap(str(marker))}, protocol=4))
    with pytest.raises(FormatError, match="not a prunebench model file: .*looks like a pickle"):
        load_container(path)
    with pytest.raises(FormatError):
        inspect_container(path)
    assert not marker.exists()


def test_failed_save_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "model.pbz"
    path.write_bytes(b"old contents")
    good = {"fc1": encode(np.eye(3, dtype=np.float32), "csr")}
    with pytest.raises(BadInputError, match="manifest is not JSON-serialisable"):
        save_container(path, good, {}, {"when": object()})
    with pytest.raises(BadInputError, match="cannot write"):
        save_container(path, good, {"x": np.array(["a"], dtype=object)}, {})
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pbz"]


@pytest.mark.parametrize("layers_, msg", [
    ({"a::b": None}, r"layer name 'a::b' should be a non-empty string without '::'"),
    ({"extra": None}, r"layer name 'extra' should be"),
    ({"fc1": np.eye(2)}, r"layer 'fc1' should be a Format, got ndarray"),
])
def test_save_refuses_bad_layers(tmp_path, layers_, msg):
    with pytest.raises(BadInputError, match=msg):
        save_container(tmp_path / "m.pbz", layers_, {}, {})


def test_save_refuses_a_layer_that_fails_check(tmp_path):
    fmt = encode(np.eye(3, dtype=np.float32), "csr")
    fmt.indices = np.array([0, 1, 7], np.uint8)
    with pytest.raises(FormatError, match="csr: column index 7 out of range"):
        save_container(tmp_path / "m.pbz", {"fc1": fmt}, {}, {})
    assert not (tmp_path / "m.pbz").exists()
