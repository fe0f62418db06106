"""The CLI with the user's own model (issue 15, item 3): ``--model module:factory`` with
``--input-shape``/``--example-input`` and ``--data``, an ``.onnx`` file, and bad input (one
line, exit 2). Run in child processes: the registration is process-wide."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

MODULE = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(40, 64), nn.Linear(64, 64), nn.Linear(64, 10)
    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(torch.relu(self.b(h)) + h)

def make():
    return Net()

class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(40, 10)
    def forward(self, x):
        return self.a(x) if float(x.sum()) > 1e9 else self.a(x).numpy().tolist()

def untraceable():
    return Untraceable()
'''


@pytest.fixture
def work(tmp_path):
    (tmp_path / "usernets.py").write_text(MODULE)
    r = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_test=r.standard_normal((300, 40)).astype(np.float32),
             y_test=r.integers(0, 10, 300))
    np.savez(tmp_path / "no_test.npz", x_train=np.zeros((3, 40), np.float32),
             y_train=np.zeros(3, np.int64))
    return tmp_path


def cli(cwd, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p.endswith("src")))
    return subprocess.run([sys.executable, "-m", "prunebench", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def user_module(folder: Path) -> ModuleType:
    """The user's ``usernets.py`` in ``folder``, loaded from its file (this process's
    ``sys.path`` and ``sys.modules`` stay as they are)."""
    spec = importlib.util.spec_from_file_location("usernets", Path(folder) / "usernets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dense_math(cwd, x):
    """Outputs of usernets.make() under torch.manual_seed(0), in NumPy (the reference)."""
    import torch

    usernets = user_module(cwd)
    torch.manual_seed(0)
    st = {k: v.double().numpy() for k, v in usernets.make().state_dict().items()}
    h = np.maximum(x @ st["a.weight"].T + st["a.bias"], 0)
    h = np.maximum(h @ st["b.weight"].T + st["b.bias"], 0) + h
    return h @ st["c.weight"].T + st["c.bias"]


FAST = ("--min-runs", "3", "--min-time", "0.05", "--warmup", "1", "--no-rss", "--json")


def test_bench_dense_with_data_reports_the_accuracy_of_dense_math(work):
    r = cli(work, "bench", "--model", "usernets:make", "--data", "d.npz", "--db", "r.sqlite",
            *FAST)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    z = np.load(work / "d.npz")
    want = float((dense_math(work, z["x_test"]).argmax(1) == z["y_test"]).mean())
    assert doc["model"] == "usernets:make"
    assert doc["accuracy"] == pytest.approx(want, abs=1e-6)
    assert doc["metrics"]["fidelity_top1"] == 1.0


def test_bench_pruned_on_native_without_data_reports_fidelity(work):
    r = cli(work, "bench", "--model", "usernets:make", "--input-shape", "1,40", "--method",
            "magnitude", "--sparsity", "0.9", "--format", "csr", "--engine", "native",
            "--db", "r.sqlite", *FAST)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["accuracy"] == "n/a" and doc["verification"]["ok"]
    assert doc["matrices_by_format"]["csr"] == 1          # b (first and last stay dense)
    f = doc["metrics"]
    assert 0 < f["fidelity_top1"] <= 1 and 0 < f["fidelity_cosine"] < 1
    assert f["fidelity_max_abs"] > 0 and f["fidelity_inputs"] == 64


def test_pack_writes_a_graph_file_that_loads_without_the_module(work):
    r = cli(work, "pack", "--model", "usernets:make", "--data", "d.npz", "--method",
            "magnitude", "--sparsity", "0.9", "--format", "csr", "-o", "m.pbz", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["lossless"] and doc["max_abs_output_error"] == 0
    # magnitude 0.9 on b only, no fine-tuning (no x_train): the reference prunes b in NumPy
    x = np.load(work / "d.npz")["x_test"][:20]
    code = ("import sys, numpy as np, torch, prunebench as pb; m, _ = pb.load('m.pbz'); "
            "assert 'usernets' not in sys.modules; "
            "np.save('y.npy', m(torch.from_numpy(np.load('d.npz')['x_test'][:20])).numpy())")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p.endswith("src")))
    sub = subprocess.run([sys.executable, "-c", code.replace("'m.pbz'", f"'{work}/m.pbz'")
                          .replace("'d.npz'", f"'{work}/d.npz'").replace("'y.npy'",
                                                                           f"'{work}/y.npy'")],
                         cwd="/", env=env, capture_output=True, text=True)
    assert sub.returncode == 0, sub.stderr
    import torch

    usernets = user_module(work)
    torch.manual_seed(0)
    st = {k: v.double().numpy() for k, v in usernets.make().state_dict().items()}
    Wb = st["b.weight"].copy()
    k = int(round(0.9 * Wb.size))
    Wb.ravel()[np.argsort(np.abs(Wb).ravel(), kind="stable")[:k]] = 0
    h = np.maximum(x @ st["a.weight"].T + st["a.bias"], 0)
    h = np.maximum(h @ Wb.T + st["b.bias"], 0) + h
    np.testing.assert_allclose(np.load(work / "y.npy"), h @ st["c.weight"].T + st["c.bias"],
                               rtol=1e-4, atol=1e-5)


def test_bench_an_onnx_file_dense_on_onnxruntime(work):
    import torch

    usernets = user_module(work)
    torch.manual_seed(0)
    torch.onnx.export(usernets.make(), (torch.randn(1, 40),), str(work / "m.onnx"),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b"}})
    r = cli(work, "bench", "m.onnx", "--data", "d.npz", "--db", "r.sqlite", *FAST)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    z = np.load(work / "d.npz")
    want = float((dense_math(work, z["x_test"]).argmax(1) == z["y_test"]).mean())
    assert doc["engine"] == "onnxruntime" and doc["accuracy"] == pytest.approx(want, abs=1e-6)
    r = cli(work, "bench", "m.onnx", "--method", "magnitude", "--sparsity", "0.9",
            "--format", "csr", "--engine", "native", "--json")
    assert r.returncode == 2 and "--model package.module:factory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "need torchvision" in r.stderr


@pytest.mark.parametrize("args, needle", [
    (("--model", "nosuch.mod:make", "--input-shape", "1,40"), "--model: 'nosuch.mod:make' does not import"),
    (("--model", "usernets", "--input-shape", "1,40"), "expected package.module:factory"),
    (("--model", "usernets:make", "--input-shape", "1,41"), "--input-shape: 1,41 does not fit"),
    (("--model", "usernets:make", "--data", "no_test.npz"), "has no x_test"),
    (("--model", "usernets:untraceable", "--input-shape", "1,40"), "cannot be exported to ONNX"),
    (("--model", "usernets:make"), "--input-shape: usernets:make needs its input shape"),
])
def test_bad_input_is_one_line_exit_2(work, args, needle):
    r = cli(work, "bench", *args, "--method", "magnitude", "--format", "csr", "--db", "r.sqlite")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (work / "r.sqlite").exists()


@pytest.mark.parametrize("command", ["bench", "prune", "pack", "plan"])
def test_help_lists_the_user_model_options(command, capsys):
    from prunebench.cli import main

    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())     # the help wraps lines
    for option, words in (("--model MODULE:FACTORY", "package.module:factory"),
                          ("--input-shape 1,N", "batch 1 first"),
                          ("--example-input FILE.npy", "an example input for --model"),
                          ("--data FILE.npz", "x_test, y_test for accuracy")):
        assert option in text and words in text, (command, option)


def test_the_options_are_not_dropped_when_app_is_called_directly():
    from prunebench.cli import app
    from prunebench.errors import BadInputError

    with pytest.raises(BadInputError, match="--data: is read by prunebench.cli.main"):
        app(["bench", "mnist1d-mlp", "--data", "d.npz"], standalone_mode=False)
