"""Command line: bad input gives one line and exit 2 with nothing written; good input works."""
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from prunebench.cli import main


def run(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


BAD = [
    (["bench", "no-such-model"], "unknown model 'no-such-model'; valid:"),
    (["bench", "mlp-4096", "--batch", "0"], "--batch: got 0"),
    (["bench", "mlp-4096", "--batch", "-3"], "--batch: got -3"),
    (["bench", "mlp-4096", "--threads", "0"], "--threads: got 0"),
    (["bench", "mlp-4096", "--threads", str((os.cpu_count() or 1) + 1)], "cores"),
    (["bench", "mlp-4096", "--seed", "one"], "--seed"),
    (["bench", "mlp-4096", "--batch", "x"], "--batch"),
    (["train", "mlp-4096"], "latency-only"),
    (["train", "nope"], "unknown model"),
    (["results", "/nonexistent/r.sqlite"], "does not exist"),
    (["frobnicate"], "No such command"),
]


@pytest.mark.parametrize("argv, needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2(argv, needle, capsys, tmp_path):
    db = tmp_path / "r.sqlite"
    if argv[0] == "bench":
        argv = argv + ["--db", str(db)]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and out == ""
    assert not db.exists()


def test_unwritable_database_path(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root writes anywhere: use a place no one can write
            target, needle = "/proc/prunebench-test/r.sqlite", "cannot create directory"
        else:
            target, needle = str(ro / "r.sqlite"), "not writable"
        code, out, err = run(["bench", "mlp-4096", "--db", target], capsys)
        assert code == 2 and needle in err and out == ""
        assert len(err.strip().splitlines()) == 1
    finally:
        ro.chmod(0o700)


def test_database_path_is_a_directory(capsys, tmp_path):
    code, _, err = run(["bench", "mlp-4096", "--db", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err


def test_foreign_database_is_left_intact(capsys, tmp_path):
    path = tmp_path / "theirs.sqlite"
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE accounts (id, balance)")
    c.execute("INSERT INTO accounts VALUES (1, 100)")
    c.commit()
    c.close()
    before = path.read_bytes()
    code, _, err = run(["bench", "mnist1d-mlp", "--db", str(path)], capsys)
    assert code == 2 and "another program" in err
    assert path.read_bytes() == before


def test_models_json_lists_zoo(capsys):
    code, out, _ = run(["models", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["mnist1d-cnn"]["dataset"] == "mnist1d" and rows["mnist1d-cnn"]["kind"] == "trained"
    assert rows["resnet18"]["params"] == 11_689_512
    assert rows["mlp-4096"]["kind"].startswith("latency-only")


KEYS = {"model", "batch", "threads", "latency_ms", "throughput", "param_bytes", "file_bytes",
        "peak_rss_bytes", "accuracy", "machine"}


@pytest.mark.slow
def test_bench_json_and_row_stored(tmp_path):
    """Through a real subprocess, as a user runs it: keys, real numbers, the row in the DB."""
    db = tmp_path / "r.sqlite"
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "prunebench", "bench", "mnist1d-cnn", "--batch", "1", "--json",
           "--db", str(db), "--min-runs", "5", "--min-time", "0.1"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert KEYS <= set(doc)
    assert set(doc["latency_ms"]) == {"p50", "p90", "p99", "mean"}
    lat = doc["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert doc["throughput"] == pytest.approx(1e3 / lat["p50"])
    assert doc["param_bytes"] == 5210 * 4
    assert doc["file_bytes"] > doc["param_bytes"]
    assert doc["peak_rss_bytes"] > 10 * 2**20
    assert 0.9 <= doc["accuracy"] <= 1.0
    assert doc["machine"]["cores"] == os.cpu_count()
    rows = sqlite3.connect(db).execute(
        "SELECT model, batch, p50_ms, accuracy, machine_id FROM results").fetchall()
    assert rows == [("mnist1d-cnn", 1, pytest.approx(lat["p50"]), pytest.approx(doc["accuracy"]),
                     doc["machine"]["id"])]


@pytest.mark.slow
def test_bench_latency_only_model_reports_na(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    code, out, err = run(["bench", "mobilenetv2", "--json", "--db", str(db), "--min-runs", "3",
                          "--min-time", "0", "--warmup", "1", "--no-rss"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["accuracy"] == "n/a" and doc["trained"] is False
    assert doc["param_bytes"] == 3_504_872 * 4 + sum(
        b.numel() * b.element_size() for b in __import__("prunebench").zoo.build(
            "mobilenetv2").buffers())
    code, out, _ = run(["results", str(db), "--json"], capsys)
    rows = json.loads(out)
    assert len(rows) == 1 and rows[0]["accuracy"] is None and rows[0]["model"] == "mobilenetv2"


def test_no_arguments_prints_the_help_and_exits_0(capsys):
    code, out, err = run([], capsys)
    assert code == 0 and err == ""
    assert out.startswith("Usage: prunebench [OPTIONS] COMMAND [ARGS]...")
    # every command, in the order the app registers them
    names = ["models", "train", "bench", "kernels", "demo", "prune", "pack", "inspect",
             "results", "study", "merge", "report", "plan"]
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == names


def test_one_json_printer_writes_what_json_writes(capsys):
    """``emit_json`` is ``json.dumps(indent=2)`` plus a newline; what JSON cannot hold
    (NumPy scalars, paths, sets) becomes the number, the text, the list."""
    from pathlib import Path

    import numpy as np

    from prunebench.cli.output import emit_json

    emit_json({"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True),
               "path": Path("/tmp/a b"), "set": {7}, "nested": [1.25, None, "s"]})
    out = capsys.readouterr().out
    assert out == json.dumps({"n": 3, "x": 0.5, "ok": True, "path": "/tmp/a b", "set": [7],
                              "nested": [1.25, None, "s"]}, indent=2) + "\n"


def test_only_the_cli_printer_writes_indented_json():
    """Every ``--json`` document goes through ``prunebench.cli.output.emit_json``: no other
    module of the package calls ``json.dumps(..., indent=...)``."""
    import ast
    from pathlib import Path

    import prunebench

    root = Path(prunebench.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if "indent" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "dumps" and any(k.arg == "indent" for k in node.keywords)):
                found.append(str(path.relative_to(root)))
    assert found == ["cli/output.py"], found
