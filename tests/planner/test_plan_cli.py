"""``prunebench plan``: the JSON keys the issue asks for, the planned model file, its plan in
the manifest as ``inspect`` shows it, and one clear line + exit 2 for bad input."""
import json

import pytest

from prunebench import zoo
from prunebench.cli import main
from prunebench.runtime import load_model


def run(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_plan_json_file_and_inspect(tmp_path, capsys, monkeypatch):
    out = tmp_path / "planned.pbm"
    code, stdout, err = run(["plan", "digits-lenet300", "--sparsity", "0.9", "--finetune-steps",
                             "0", "-o", str(out), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    for key in ("planned_ms", "dense_ms", "best_single_ms", "best_single_format",
                "planned_file_bytes", "layers"):
        assert key in doc, key
    assert doc["planned_file_bytes"] == out.stat().st_size
    layers = {lay["name"]: lay for lay in doc["layers"]}
    mid = layers["layers.1"]
    assert mid["shape"] == [100, 300] and abs(mid["sparsity"] - 0.9) < 0.01
    assert set(mid["times_ms"]) >= {"dense", "csr", "bsr", "bitmap", "ell"}
    assert mid["format"] in mid["times_ms"] and doc["verify"]["ok"]
    # the file runs the plan's formats and computes the pruned model's outputs
    model, manifest = load_model(out)
    assert manifest["planner"]["layers"]["layers.1"]["format"] == mid["format"]
    _, data = zoo.load("digits-lenet300")
    assert model(data.x_test[:8]).shape == (8, 10)
    # inspect says which format each layer uses and why, with the measured times
    code, stdout, err = run(["inspect", str(out), "--json"], capsys)
    assert code == 0, err
    info = json.loads(stdout)
    lay = info["layers"]["layers.1.weight"]
    assert lay["format"] == mid["format"]
    assert lay["why"].startswith("planner: ") and "measured dense" in lay["why"]
    # planning the same pruned model again takes its timings from the cache
    code, stdout, _ = run(["plan", str(out), "--json"], capsys)
    assert code == 0
    again = json.loads(stdout)
    assert again["cache_hits"] > 0 and again["layers"][1]["times_ms"] == mid["times_ms"]


BAD = [
    (["plan", "digits-lenet300", "--objective", "speed"], "--objective: got 'speed'"),
    (["plan", "digits-lenet300", "--objective", "size", "--budget-ms", "0"], "--budget-ms: got 0"),
    (["plan", "digits-lenet300", "--objective", "size", "--budget-ms", "nan"], "--budget-ms"),
    (["plan", "digits-lenet300", "--budget-ms", "5"], "only with --objective size"),
    (["plan", "digits-lenet300", "--engine", "onnxruntime"], "--engine: got 'onnxruntime'"),
    (["plan", "digits-lenet300", "--batch", "0"], "--batch: got 0"),
    (["plan", "digits-lenet300", "--threads", "0"], "threads=0"),
    (["plan", "digits-lenet300", "--values", "int4"], "--values: got 'int4'"),
    (["plan", "digits-lenet300", "--method", "bogus"], "bogus"),
    (["plan", "digits-lenet300", "--sparsity", "1.5"], "1.5"),
    (["plan", "no-such-model"], "unknown model 'no-such-model'"),
    (["plan", "digits-lenet300", "--hosts", "tensorrt"], "hosts: 'tensorrt'"),
    (["plan", "digits-lenet300", "--hosts", "onnxruntime/csr"], "hosts: 'onnxruntime/csr'"),
]


@pytest.mark.parametrize("argv, needle", BAD, ids=[" ".join(a[2:]) for a, _ in BAD])
def test_bad_input_one_line_exit_2_before_loading(argv, needle, capsys, monkeypatch):
    def tripwire(*a, **k):
        raise AssertionError("the model was loaded before the bad argument was refused")

    monkeypatch.setattr(zoo, "load", tripwire)
    code, out, err = run(argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), err
    assert needle in lines[0], lines[0]
