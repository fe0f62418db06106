"""Run profiles (issue 17, item 2): the edge profile's variables reach numba and torch in a child
process, the fingerprint and the stored rows record the profile, bad input exits 2."""
from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prunebench.errors import BadInputError
from prunebench.measure import fingerprint
from prunebench.measure.profile import (PROFILE_KEYS, current_profile, profile_env,
                                        profile_vars)

ROOT = Path(__file__).resolve().parents[1]
X86 = platform.machine().lower() in ("x86_64", "amd64")
EDGE_RUN = """
import json
import numba, numpy as np, torch
from tests.kernels.kernel_builders import csr_arrays, random_matrix
from prunebench.kernels import csr_matvec, spmv_csr
from prunebench.measure import fingerprint
W = random_matrix(30, 50, 0.7)
x = np.random.default_rng(0).standard_normal(50).astype(np.float32)
y = csr_matvec(*csr_arrays(W != 0, W.astype(np.float16), np.uint16), x, shape=W.shape)
asm = "\\n".join(spmv_csr.inspect_asm().values())
print(json.dumps({"fp": fingerprint(), "cpu_name": numba.config.CPU_NAME,
                  "aten": torch.backends.cpu.get_cpu_capability(), "y": y.tolist(),
                  "W": W.tolist(), "x": x.tolist(),
                  "wide_registers": "%ymm" in asm or "%zmm" in asm}))
"""


def test_profile_variables():
    assert profile_vars("default") == {}
    edge = profile_vars("edge")
    assert edge["PRUNEBENCH_PROFILE"] == "edge" and edge["ATEN_CPU_CAPABILITY"] == "default"
    assert set(edge) <= set(PROFILE_KEYS)
    if X86:
        assert (edge["NUMBA_CPU_NAME"], edge["NUMBA_CPU_FEATURES"]) == ("x86-64-v2", "")
    env = profile_env("default", {"NUMBA_CPU_NAME": "generic", "PATH": "/bin", **edge})
    assert env == {"PATH": "/bin"}
    with pytest.raises(BadInputError, match="profile: got 'arm'; allowed: default, edge"):
        profile_vars("arm")


def test_current_profile_reads_the_environment(monkeypatch):
    monkeypatch.delenv("PRUNEBENCH_PROFILE", raising=False)
    assert current_profile() == "default"
    monkeypatch.setenv("PRUNEBENCH_PROFILE", "fast")
    with pytest.raises(BadInputError, match="PRUNEBENCH_PROFILE: got 'fast'"):
        current_profile()


@pytest.mark.slow
@pytest.mark.skipif(not X86, reason="the 128-bit target named here is x86-64's")
def test_edge_child_compiles_for_128_bit_simd_and_records_the_profile(tmp_path):
    env = dict(profile_env("edge"), NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                           os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", EDGE_RUN], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    here = fingerprint()
    assert got["cpu_name"] == "x86-64-v2" and not got["wide_registers"]
    assert got["aten"] == "DEFAULT"
    fp = got["fp"]
    assert fp["profile"] == "edge" and fp["env"]["NUMBA_CPU_NAME"] == "x86-64-v2"
    # another machine to the store, the same host to the report
    assert fp["host_id"] == here["host_id"] == here["id"] and fp["id"] != here["id"]
    assert here["profile"] == "default"
    # float16 CSR in the edge build equals the dense product (portable half conversion)
    W = np.array(got["W"], np.float32).astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(got["y"], W @ np.array(got["x"]), rtol=1e-5, atol=1e-5)


def _main(argv):
    from prunebench.cli import main

    return main(argv)


@pytest.mark.parametrize("argv,msg", [
    (["--profile", "edge", "--threads", "2"], "--threads: got 2 with --profile edge"),
    (["--profile", "phone"], "--profile: got 'phone'; allowed: default, edge"),
])
def test_bench_profile_bad_input(argv, msg, tmp_path, capsys):
    if "--threads" in argv and (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores")
    db = tmp_path / "r.sqlite"
    assert _main(["bench", "mnist1d-mlp", "--db", str(db), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and msg in err
    assert not db.exists()


@pytest.mark.slow
@pytest.mark.skipif(not X86, reason="the 128-bit target named here is x86-64's")
def test_bench_edge_profile_runs_in_a_child_and_stores_the_profile(tmp_path, capfd):
    db = tmp_path / "r.sqlite"
    rc = _main(["bench", "mnist1d-mlp", "--method", "magnitude", "--sparsity", "0.9",
                "--finetune-steps", "0", "--format", "csr", "--engine", "native",
                "--profile", "edge", "--min-runs", "3", "--min-time", "0.01", "--warmup", "1",
                "--no-rss", "--db", str(db), "--json"])
    out = capfd.readouterr().out
    assert rc == 0, out[-2000:]
    rep = json.loads(out)
    assert rep["profile"] == "edge" and rep["machine"]["profile"] == "edge"
    assert rep["verification"]["ok"] and rep["threads"] == 1
    c = sqlite3.connect(db)
    (profile, mid), = c.execute("SELECT profile, machine_id FROM results").fetchall()
    assert profile == "edge" and mid == rep["machine"]["id"] != fingerprint()["id"]


def test_study_spec_run_profile():
    from prunebench.study.spec import load_spec, spec_summary

    base = {"models": ["mnist1d-mlp"], "formats": ["dense"], "engines": ["torch-dense"]}
    assert load_spec(dict(base)).run_profile == "default"
    s = load_spec(dict(base, run_profile="edge"))
    assert s.run_profile == "edge" and spec_summary(s)["run_profile"] == "edge"
    with pytest.raises(BadInputError, match="run_profile: got 'phone'; allowed: default, edge"):
        load_spec(dict(base, run_profile="phone"))
    if (os.cpu_count() or 1) >= 2:
        with pytest.raises(BadInputError, match="threads: got \\[1, 2\\]; run_profile edge runs "
                                                "on 1 thread"):
            load_spec(dict(base, run_profile="edge", threads=[1, 2]))


@pytest.mark.slow
def test_study_run_profile_edge_runs_in_a_child_and_its_rows_carry_it(tmp_path, capfd):
    import yaml

    spec = tmp_path / "edge.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "edge-mini", "run_profile": "edge", "models": ["digits-lenet300"],
        "methods": ["magnitude"], "sparsities": [0.9], "finetune_steps": 0,
        "formats": ["dense"], "engines": ["torch-dense"],
        "measure": {"warmup": 1, "min_runs": 3, "min_time": 0.0, "max_time": 0.1}}))
    out = tmp_path / "out"
    assert _main(["study", str(spec), "--out", str(out), "--json"]) == 0
    summary = json.loads(capfd.readouterr().out)
    assert summary["failed"] == 0 and summary["done"] > 0
    c = sqlite3.connect(out / "results.sqlite")
    assert {r[0] for r in c.execute("SELECT DISTINCT profile FROM results")} == {"edge"}
    (fp,), = c.execute("SELECT fingerprint FROM machines").fetchall()
    fp = json.loads(fp)
    assert fp["profile"] == "edge" and fp["host_id"] == fingerprint()["id"] != fp["id"]


def test_study_run_profile_edge_refuses_a_cluster(tmp_path, capsys):
    spec = tmp_path / "edge.yaml"
    spec.write_text("run_profile: edge\nmodels: [digits-lenet300]\nengines: [torch-dense]\n")
    assert _main(["study", str(spec), "--cluster", "tcp://127.0.0.1:1", "--out",
                  str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--cluster: got 'tcp://127.0.0.1:1' with run_profile edge" in err and "\n" not in err
    assert not (tmp_path / "o").exists()
