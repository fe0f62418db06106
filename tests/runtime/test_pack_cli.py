"""`prunebench pack` and `prunebench inspect`: byte accounting to the byte, the JSON documents,
the compression target, and every way a model file can be broken (one line, exit 2).

Byte counts are checked against the safetensors header parsed here by hand (8-byte length,
JSON table of data offsets), not against the package's own accounting.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from prunebench import zoo
from prunebench.cli import main
from prunebench.formats import estimate_nbytes
from prunebench.pruning import prunable_layers, prune
from prunebench.runtime import load_model, save_model

torch.set_num_threads(1)
LENET = "digits-lenet300"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def raw_header(path: Path) -> tuple[int, dict]:
    """(header length, JSON table) of a safetensors file, read by hand."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8:8 + n])


def tensor_bytes(table: dict) -> dict[str, int]:
    return {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in table.items() if k != "__metadata__"}


@pytest.fixture(scope="module")
def lenet_pruned():
    net = zoo.build(LENET, seed=0)
    return prune(net, "magnitude", 0.9, scope="global", layers=prunable_layers(net)).model


def matrices(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items() if v.ndim == 2}


# ------------------------------------------------------------------ inspect: bytes to the byte


@pytest.mark.parametrize("fmt, values, opts", [
    ("csr", "fp32", {}), ("csr", "int8", {}), ("coo", "fp16", {}), ("bitmap", "fp32", {}),
    ("dense", "fp32", {}), ("nm", "fp32", {"n": 2, "m": 4}), ("rcsr", "int8", {"bits": 8}),
])
def test_inspect_json_accounts_for_every_byte(lenet_pruned, fmt, values, opts, capsys, tmp_path):
    model = lenet_pruned
    if fmt == "nm":
        net = zoo.build(LENET, seed=0)
        model = prune(net, "nm", n=2, m=4, layers=prunable_layers(net)).model
    path = tmp_path / "m.pbz"
    save_model(path, model, zoo_name=LENET, format=fmt, values=values, keep_smaller=False, **opts)
    code, out, err = run(["inspect", path, "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    n, table = raw_header(path)
    sizes = tensor_bytes(table)
    size = os.path.getsize(path)
    assert size == 8 + n + sum(sizes.values())                  # tensors packed, no gaps
    assert info["file_bytes"] == size and info["container_overhead"] == 8 + n
    assert info["nbytes"] + info["extra_bytes"] + info["container_overhead"] == size
    assert info["extra_bytes"] == sum(v for k, v in sizes.items() if k.startswith("extra::"))
    # biases 300 + 100 + 10, fp32 or fp16
    assert info["extra_bytes"] == 410 * (4 if values == "fp32" else 2)
    W = matrices(model)
    for name, lay in info["layers"].items():
        assert lay["format"] == fmt and lay["why"] == "requested"
        assert lay["nbytes"]["total"] == sum(v for k, v in sizes.items() if k.startswith(name + "::"))
        nnz = int(np.count_nonzero(W[name]))
        if fmt != "rcsr":                   # rcsr's estimate is an expectation over positions
            est = estimate_nbytes(fmt, W[name].shape, 1 - nnz / W[name].size, values=values, **opts)
            assert lay["nbytes"] == est, name
        else:                               # 8-bit deltas: a filler per 256 skipped columns
            rows, cols = W[name].shape
            stored = nnz + sum(int(g) // 256 for row in W[name]
                               for g in np.diff(np.flatnonzero(row), prepend=-1) - 1)
            counts = rows * (1 if cols <= 255 else 2)      # uint8 / uint16 per row
            assert lay["nbytes"] == {"values": stored, "indices": stored, "pointers": counts,
                                     "metadata": 2 * rows, "total": 2 * stored + counts + 2 * rows}
    assert info["lossless"] == (values == "fp32")
    dense = 202_920                         # the dense fp32 safetensors file of LeNet-300-100
    assert info["dense_file_bytes"] == dense and info["compression_ratio"] == pytest.approx(dense / size)


def test_inspect_table_names_formats_and_why(capsys, tmp_path):
    model = prune(zoo.build(LENET), "magnitude", 0.9, layers=["layers.1"]).model
    path = tmp_path / "m.pbz"
    save_model(path, model, zoo_name=LENET, format="csr")
    code, out, err = run(["inspect", path], capsys)
    assert code == 0, err
    assert re.search(r"layers\.1\.weight\s*│\s*csr\s*│.*│\s*requested", out)
    assert re.search(r"layers\.0\.weight\s*│\s*dense\s*│.*│\s*csr would take", out)
    assert f"= {os.path.getsize(path):,} B" in out


# ------------------------------------------------------------------ bad files: one line, exit 2


def rewrite(path: Path, edit) -> None:
    """Load every tensor and the prunebench header, let ``edit(tensors, header)`` change them,
    and write a well-formed safetensors file again."""
    with safe_open(str(path), framework="numpy") as f:
        header = json.loads(f.metadata()["prunebench"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(tensors, header)
    save_file(tensors, str(path), metadata={"prunebench": json.dumps(header)})


def set_modules(t, h):
    h["manifest"]["modules"] = {"layers.0": {"out_features": 200}}


def short_extra(t, h):
    t["extra::float32"] = t["extra::float32"][:-1]


def drop_layer(t, h):
    del h["layers"]["layers.1.weight"]
    for k in [k for k in t if k.startswith("layers.1.weight::")]:
        del t[k]


def drop_extra(t, h):
    del t["extra::float32"]


def drop_array(t, h):
    del t["layers.2.weight::data"]


def transpose_dense(t, h):
    # a dense layer stored transposed is self-consistent: only the architecture can tell
    t["layers.0.weight::data"] = np.ascontiguousarray(t["layers.0.weight::data"].T)
    h["layers"]["layers.0.weight"]["meta"]["shape"] = [64, 300]


def unknown_format(t, h):
    h["layers"]["layers.0.weight"]["format"] = "blocked-ell"


def manifest_model(t, h):
    h["manifest"]["model"] = "digits-lenet301"


def manifest_values(t, h):
    h["manifest"]["values"] = "int8"


def modules_attr(t, h):
    h["manifest"]["modules"] = {"layers.0": {"forward": 1}}


BAD_FILES = [
    ("csr", set_modules, r"layer 'layers\.0\.weight': shape \[300, 64\], but digits-lenet300 needs \[200, 64\]$"),
    ("csr", short_extra, r"tensor extra::float32 is float32 \[409\], expected float32 \[410\] for "
                         r"layers\.0\.bias, layers\.1\.bias, layers\.2\.bias"),
    ("csr", drop_layer, r"layer 'layers\.1\.weight' is missing"),
    ("csr", drop_extra, r"tensor extra::float32 is missing \(it holds layers\.0\.bias"),
    ("csr", drop_array, r"layer 'layers\.2\.weight': header lists arrays \['indptr', 'indices', 'data'\] "
                        r"but the file holds \['indices', 'indptr'\]"),
    ("dense", transpose_dense, r"layer 'layers\.0\.weight': shape \[64, 300\], but digits-lenet300 needs \[300, 64\]$"),
    ("csr", unknown_format, r"layer 'layers\.0\.weight': unknown format 'blocked-ell'; valid: "),
    ("csr", manifest_model, r"manifest names an unknown model: unknown model 'digits-lenet301'"),
    ("csr", manifest_values, r"layer 'layers\.0\.weight': values 'fp32', but the manifest says 'int8'"),
    ("csr", modules_attr, r"manifest 'modules' sets layers\.0\.forward; allowed: in_features, out_features"),
]


def assert_one_line_exit_2(argv, capsys, pattern):
    for json_flag in ([], ["--json"]):
        code, out, err = run(argv + json_flag, capsys)
        assert code == 2, (out, err)
        assert out == "" and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert re.search(pattern, err), err
    return err


@pytest.mark.parametrize("fmt, edit, msg", BAD_FILES, ids=[e.__name__ for _, e, _ in BAD_FILES])
def test_inconsistent_file_is_refused_naming_file_and_layer(lenet_pruned, fmt, edit, msg, capsys, tmp_path):
    path = tmp_path / "bad.pbz"
    save_model(path, lenet_pruned, zoo_name=LENET, format=fmt, keep_smaller=False)
    rewrite(path, edit)
    err = assert_one_line_exit_2(["inspect", path], capsys, msg)
    assert str(path) in err


def test_csr_index_out_of_range_edited_in_the_file_bytes(lenet_pruned, capsys, tmp_path):
    path = tmp_path / "bad.pbz"
    save_model(path, lenet_pruned, zoo_name=LENET, format="csr", keep_smaller=False)
    n, table = raw_header(path)
    entry = table["layers.0.weight::indices"]
    assert entry["dtype"] == "U8"                   # 64 columns: one byte per column index
    start = 8 + n + entry["data_offsets"][0]
    data = bytearray(path.read_bytes())
    data[start + 5] = 200
    path.write_bytes(bytes(data))
    # the row of entry 5, from the indptr bytes of the same file
    p = table["layers.0.weight::indptr"]
    indptr = np.frombuffer(bytes(data[8 + n + p["data_offsets"][0]: 8 + n + p["data_offsets"][1]]), np.int32)
    row = int(np.searchsorted(indptr, 5, side="right") - 1)
    assert_one_line_exit_2(["inspect", path], capsys,
                           rf"file {re.escape(str(path))}, layer 'layers\.0\.weight': csr: column index 200 "
                           rf"out of range for 64 columns in row {row}$")


def test_truncated_file_is_refused(lenet_pruned, capsys, tmp_path):
    path = tmp_path / "cut.pbz"
    save_model(path, lenet_pruned, zoo_name=LENET, format="csr")
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 100, 5):
        path.write_bytes(data[:cut])
        assert_one_line_exit_2(["inspect", path], capsys,
                               rf"file {re.escape(str(path))} is not a prunebench model file: ")


def test_corrupted_header_is_refused(lenet_pruned, capsys, tmp_path):
    path = tmp_path / "hdr.pbz"
    save_model(path, lenet_pruned, zoo_name=LENET, format="csr")
    good = path.read_bytes()
    for offset, byte in ((8, ord("[")), (20, ord("}"))):      # JSON broken at its start, inside
        data = bytearray(good)
        data[offset] = byte
        path.write_bytes(bytes(data))
        assert_one_line_exit_2(["inspect", path], capsys, rf"file {re.escape(str(path))} is not a prunebench")
    data = bytearray(good)
    data[:8] = struct.pack("<Q", 2**40)                         # length past the end of the file
    path.write_bytes(bytes(data))
    assert_one_line_exit_2(["inspect", path], capsys, rf"file {re.escape(str(path))} is not a prunebench")


class Trap:
    """Unpickling this object creates a marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("suffix", [".pt", ".pbz"])
def test_pickle_file_is_refused_and_never_unpickled(suffix, capsys, tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"layers.0.weight": Trap(str(marker))}, protocol=4))
    assert_one_line_exit_2(["inspect", path], capsys,
                           rf"file {re.escape(str(path))} is not a prunebench model file: .*looks like a pickle")
    assert not marker.exists()


def test_plain_safetensors_file_is_refused(capsys, tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path))
    assert_one_line_exit_2(["inspect", path], capsys, r"no 'prunebench' entry in its metadata")


@pytest.mark.parametrize("args, msg", [
    (["--format", "blocked-ell"], r"--format: unknown format 'blocked-ell'; valid: bitmap, bsr, "),
    (["--values", "int4"], r"--values: got 'int4'; allowed: fp32, fp16, int8"),
    (["--format", "rcsr", "--bits", "6"], r"--bits: got 6; allowed: 4, 8"),
    (["--format", "lowrank"], r"--format lowrank: pass exactly one of --rank"),
    (["--format", "lowrank", "--rank", "2", "--energy", "0.5"], r"--format lowrank: pass exactly one"),
])
def test_pack_bad_options_fail_before_pruning(args, msg, capsys, tmp_path):
    out = tmp_path / "x.pbz"
    # mnist1d-mlp is not trained by any other test: a check after loading it would be slow
    assert_one_line_exit_2(["pack", "mnist1d-mlp", "-o", out] + args, capsys, msg)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_inspect_missing_file(capsys, tmp_path):
    assert_one_line_exit_2(["inspect", tmp_path / "nope.pbz"], capsys, r"path: '.*nope\.pbz' is not a file")


# ------------------------------------------------------------------ pack --json, the target


def dense_file_bytes(model) -> int:
    """Size of the model's state dict saved as safetensors, written here."""
    import tempfile

    from safetensors.torch import save_file as save_torch

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "dense.safetensors"
        save_torch({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        return path.stat().st_size


def accuracy(model, data) -> float:
    with torch.no_grad():
        return float((model.eval()(data.x_test).argmax(1) == data.y_test).double().mean())


def pack_json(argv, capsys):
    code, out, err = run(["pack", *argv, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_pack_json_reports_sizes_and_accuracy_of_the_loaded_file(capsys, tmp_path):
    path = tmp_path / "p.pbz"
    doc = pack_json([LENET, "--sparsity", "0.8", "--scope", "global", "--layers", "all",
                     "--finetune-steps", "50", "--format", "csr", "-o", path], capsys)
    dense, data = zoo.load(LENET)
    back, _ = load_model(path)
    assert doc["file_bytes"] == os.path.getsize(path)
    assert doc["dense_file_bytes"] == dense_file_bytes(dense) == 202_920
    assert doc["compression_ratio"] == pytest.approx(doc["dense_file_bytes"] / doc["file_bytes"])
    assert doc["accuracy_dense"] == pytest.approx(accuracy(dense, data), abs=1e-6)
    assert doc["accuracy_packed"] == pytest.approx(accuracy(back, data), abs=1e-6)
    # fp32 csr is lossless: the file gives back exactly the pruned model
    assert doc["lossless"] and doc["bit_identical"]
    assert doc["max_abs_weight_error"] == 0 and doc["max_abs_output_error"] == 0
    assert doc["accuracy_packed"] == doc["accuracy_pruned"]
    assert sum(doc["bytes"].values()) == doc["file_bytes"]
    # 20% of 50,200 weights kept: csr with uint8 / uint16 columns and int32 pointers
    nnz = sum(int((v != 0).sum()) for k, v in back.state_dict().items() if k.endswith("weight"))
    assert nnz == round(0.2 * 50_200)


def test_pack_int8_is_lossy_and_says_so(capsys, tmp_path):
    path = tmp_path / "q.pbz"
    doc = pack_json([LENET, "--sparsity", "0.8", "--layers", "all", "--finetune-steps", "50",
                     "--format", "bitmap", "--values", "int8", "-o", path], capsys)
    assert not doc["lossless"] and not doc["bit_identical"]
    assert 0 < doc["max_abs_weight_error"] < 0.01 and doc["max_abs_output_error"] > 0
    assert all(not p["lossless"] for p in doc["plan"].values())
    code, out, _ = run(["pack", LENET, "--sparsity", "0.8", "--layers", "all", "--finetune-steps", "50",
                        "--format", "bitmap", "--values", "int8", "-o", path], capsys)
    assert code == 0 and "lossy (int8): max weight error" in out and "lossless" not in out


TARGET = [LENET, "--sparsity", "0.97", "--schedule", "gradual", "--finetune-steps", "3000",
          "--finetune-batch", "128", "--validation", "0",
          "--scope", "global", "--layers", "all", "--format", "rcsr", "--bits", "8", "--values", "int8"]


@pytest.mark.slow
def test_lenet300_rcsr_int8_is_25x_smaller_within_one_point(capsys, tmp_path):
    """Deep Compression reports 40x for LeNet-300-100 with pruning, quantisation and Huffman
    coding; without entropy coding the target here is 25x against the dense fp32 file with test
    accuracy (of the model loaded back from the file) within 1 point of dense, on average over
    the pruning seeds 0-2. One seed alone is not a finding: on 450 test digits the seeds
    spread over 1.8 points (a Xeon machine: 96.44 / 98.22 / 96.89% against 97.56% dense; the
    AMD one: 97.33 / 97.78 / 97.33%), so no seed may fall more than 2 points below."""
    dense, data = zoo.load(LENET)
    acc_dense = accuracy(dense, data)
    accs = []
    for seed in (0, 1, 2):
        path = tmp_path / f"lenet{seed}.pbz"
        doc = pack_json([*TARGET, "--seed", str(seed), "-o", path], capsys)
        back, _ = load_model(path)
        ratio = dense_file_bytes(dense) / os.path.getsize(path)
        assert ratio >= 25, doc["bytes"]
        assert doc["compression_ratio"] == pytest.approx(ratio)
        acc_file = accuracy(back, data)
        assert doc["accuracy_packed"] == pytest.approx(acc_file, abs=1e-6)
        assert acc_file >= acc_dense - 0.02, (seed, acc_file, acc_dense)
        accs.append(acc_file)
        sparsity = 1 - sum(int((v != 0).sum()) for k, v in back.state_dict().items()
                           if k.endswith("weight")) / 50_200
        assert sparsity >= 0.97
    assert sum(accs) / 3 >= acc_dense - 0.01, (accs, acc_dense)
