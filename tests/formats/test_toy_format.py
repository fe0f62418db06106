"""Issue 19's acceptance check: a storage format defined in one module (``toy_format.py``: the
format class and its kernel, registered there) encodes, decodes, is stored and loaded (the
container and a model file) and appears in ``prunebench kernels``, with no other file naming
it. It runs in a child process, so the toy never joins the registries the other tests walk
(every registered format must have a case in ``format_cases.py``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent

CHILD = r"""
import importlib.util, json, sys, tempfile
from pathlib import Path

import numpy as np
import torch

spec = importlib.util.spec_from_file_location("toy_format", sys.argv[1])
toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)                  # the one module: format + kernel registration

from typer.testing import CliRunner
from prunebench import zoo
from prunebench.cli import app
from prunebench.formats import encode, inspect_container, load_container, save_container
from prunebench.runtime import load_model, save_model

out = {}
rng = np.random.default_rng(0)
W = rng.standard_normal((24, 40)).astype(np.float32)
W[rng.random(W.shape) < 0.8] = 0
out["W"] = W.tolist()
for v in ("fp32", "int8"):
    f = encode(W, "toy", values=v)
    out[v] = {"dense": f.to_dense().tolist(), "nbytes": f.nbytes()}
tmp = Path(tempfile.mkdtemp())
save_container(tmp / "c.pbz", {"fc": encode(W, "toy")})
layers, _, _ = load_container(tmp / "c.pbz")
out["container"] = {"type": type(layers["fc"]).__name__, "dense": layers["fc"].to_dense().tolist()}

torch.manual_seed(0)
model = zoo.get_spec("mnist1d-mlp").build().eval()
with torch.no_grad():
    for p in model.parameters():
        if p.dim() == 2:
            p[torch.rand(p.shape) < 0.8] = 0
save_model(tmp / "m.pbz", model, zoo_name="mnist1d-mlp", format="toy", keep_smaller=False)
back, _ = load_model(tmp / "m.pbz")
x = torch.randn(4, 40)
with torch.no_grad():
    out["model"] = {"max_abs": float((back(x) - model(x)).abs().max()),
                    "formats": sorted({l["format"] for l in
                                       inspect_container(tmp / "m.pbz")["layers"].values()})}

res = CliRunner().invoke(app, ["kernels", "--shape", "64x48", "--sparsity", "0.8", "--batch",
                               "1,3", "--threads", "1", "--cache", "warm", "--repeats", "2",
                               "--json"])
out["kernels_exit"] = res.exit_code
out["kernels"] = json.loads(res.stdout) if res.exit_code == 0 else res.output
print(json.dumps(out))
"""


@pytest.mark.slow   # a child process: ~9 s on the loaded 2-core machine with the numba cache warm
def test_a_toy_format_in_one_module_encodes_stores_loads_and_is_timed():
    done = subprocess.run([sys.executable, "-c", CHILD, str(HERE / "toy_format.py")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    W = np.array(out["W"], np.float32)
    nnz = int((W != 0).sum())
    # fp32 round-trips exactly; int8 within half a step of its row's scale
    assert np.array_equal(np.array(out["fp32"]["dense"], np.float32), W)
    step = np.abs(W).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(np.array(out["int8"]["dense"]) - W) <= step / 2 + 1e-6)
    assert out["fp32"]["nbytes"] == {"values": 4 * nnz, "indices": 8 * nnz, "pointers": 0,
                                     "metadata": 0, "total": 12 * nnz}
    assert out["int8"]["nbytes"]["metadata"] == 4 * W.shape[0]        # the per-row scales
    assert out["container"]["type"] == "ToyFormat"
    assert np.array_equal(np.array(out["container"]["dense"], np.float32), W)
    # the model file: every pruned layer stored as toy, loaded back computing the same outputs
    assert out["model"]["formats"] == ["toy"]
    assert out["model"]["max_abs"] < 1e-5
    # prunebench kernels times it on our kernels (each row verified against X @ W.T first)
    assert out["kernels_exit"] == 0, out["kernels"]
    toy_rows = [r for r in out["kernels"]["rows"] if r["format"] == "toy"]
    assert sorted(r["batch"] for r in toy_rows) == [1, 3]
    assert all(r["engine"] == "native" and r["ms"] > 0 for r in toy_rows)
