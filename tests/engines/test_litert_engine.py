"""Engine ``litert``: the .tflite file run by LiteRT (XNNPACK) computes what the pruned PyTorch
model computes (dense PyTorch is the reference), and ``tflite-sparse`` really stores the pruned
filters in TFLite's sparse tensor format (read back from the flatbuffer, decoded here)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.engines import litert_engine
from prunebench.errors import PrunebenchError

_MISSING = litert_engine.missing_packages()
if _MISSING and not os.environ.get("PRUNEBENCH_REQUIRE_LITERT"):
    # printed so a skipped run says why; `make test` sets PRUNEBENCH_REQUIRE_LITERT and installs
    # the `edge` extra, so there the tests run (or fail) instead
    print(f"tests/engines/test_litert_engine.py skipped: {litert_engine.INSTALL}; missing: "
          f"{', '.join(_MISSING)}")
    pytest.skip(f"missing {', '.join(_MISSING)} ({litert_engine.INSTALL})", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore")


class Net(nn.Module):
    """MobileNetV2's shape in small: 3x3 stride-2 stem, 1x1 expand, depthwise, 1x1 project,
    residual, global mean, classifier."""

    def __init__(self, c=16, e=64, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, stride=2, padding=1), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(c, e, 1), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(e, e, 3, padding=1, groups=e), nn.ReLU6())
        self.project = nn.Conv2d(e, c, 1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        h = self.stem(x)
        h = h + self.project(self.dw(self.expand(h)))
        return self.fc(h.mean((2, 3)))


def _net(sparsity: float, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = Net().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in (net.expand[0], net.project):
            m.weight.mul_(torch.rand(m.weight.shape, generator=g) >= sparsity)
    return net


@pytest.fixture(scope="module")
def pruned():
    return _net(0.8)


@pytest.fixture(scope="module")
def x():
    return torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["dense", "tflite-sparse"])
def test_outputs_match_pytorch(fmt, pruned, x):
    run = pb.compile(pruned, fmt, engine="litert", threads=1, example_input=x[:1])
    with torch.no_grad():
        ref = pruned(x)
    for n in (1, 5):                      # the converted batch and a resized one
        out = run(x[:n])
        assert out.shape == ref[:n].shape
        np.testing.assert_allclose(out.numpy(), ref[:n].numpy(), rtol=1e-4, atol=1e-5)
    v = pb.verify(run, pruned, x)
    assert v.ok and v.top1_agreement == 1.0


def _decode(t: dict) -> np.ndarray:
    """Dense array from TFLite's encoding: leading dims dense, the last SPARSE_CSR."""
    shape = t["shape"]
    rows = np.zeros((int(np.prod(shape[:-1])), shape[-1]), np.float32)
    seg, idx = t["segments"].astype(np.int64), t["indices"].astype(np.int64)
    for r in range(len(rows)):
        rows[r, idx[seg[r]:seg[r + 1]]] = t["values"][seg[r]:seg[r + 1]]
    return rows.reshape(shape)


@pytest.mark.slow
def test_sparse_file_stores_the_pruned_filters_sparse(pruned):
    x1 = torch.zeros(1, 3, 32, 32)
    dense = pb.compile(pruned, "dense", engine="litert", example_input=x1)
    sparse = pb.compile(pruned, "tflite-sparse", engine="litert", example_input=x1)
    assert litert_engine.sparse_tensors(dense.tflite_bytes) == []
    stored = litert_engine.sparse_tensors(sparse.tflite_bytes)
    # the two pruned 1x1 convolutions, nothing else (the dense stem/depthwise/fc stay dense)
    assert len(stored) == 2
    expected = {tuple(m.weight.shape[:1]) + (1, 1, m.weight.shape[1]):
                m.weight.detach().permute(0, 2, 3, 1).numpy()          # OIHW -> TFLite's OHWI
                for m in (pruned.expand[0], pruned.project)}
    for t in stored:
        assert t["consumer"] == "DENSIFY"
        assert t["dim_formats"] == [0, 0, 0, 1]            # DENSE, DENSE, DENSE, SPARSE_CSR
        w = expected[tuple(t["shape"])]
        assert len(t["values"]) == np.count_nonzero(w)     # only the nonzeros are stored
        np.testing.assert_array_equal(_decode(t), w)
    assert sparse.file_bytes < dense.file_bytes == sparse.dense_file_bytes
    assert sum(r["sparse"] for r in sparse.plan.values()) == 2
    # the README's evidence: on x86 with AVX, XNNPACK keeps dense inference for the sparse file
    # (xnn_is_chw_compatible_config), so both files give bit-identical outputs; its sparse
    # NCHW kernels would sum in another order
    if " avx " in _cpu_flags():
        xr = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        assert torch.equal(dense(xr), sparse(xr))


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return " " + next(line for line in f if line.startswith("flags")).split(":", 1)[1] + " "
    except (OSError, StopIteration):
        return ""


@pytest.mark.slow
def test_mobilenetv2_90_percent_1x1_sparse_file_verified():
    model, _ = pb.zoo.load("mobilenetv2", trained=False)
    layers = [n for n, m in model.named_modules()
              if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1]
    pruned = pb.prune(model, "magnitude", 0.9, layers=layers).model
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    run = pb.compile(pruned, "tflite-sparse", engine="litert", example_input=x[:1])
    assert pb.verify(run, pruned, x).ok
    stored = litert_engine.sparse_tensors(run.tflite_bytes)
    # every pruned 1x1 convolution is smaller sparse at 90%, the smallest (16x32) included
    assert len(stored) == len(layers) == 34
    assert run.file_bytes < 0.55 * run.dense_file_bytes


def test_missing_packages_is_one_line_naming_what_to_install(monkeypatch):
    from prunebench.benchmark import check_engine_format

    monkeypatch.setattr(litert_engine, "missing_packages", lambda: ["litert-torch"])
    with pytest.raises(PrunebenchError) as e:
        check_engine_format("litert", "dense", "fp32")
    msg = str(e.value)
    assert "\n" not in msg and "pip install" in msg and "litert-torch" in msg


def test_cli_missing_packages_exits_2(monkeypatch, tmp_path, capsys):
    from prunebench.cli import main

    monkeypatch.setattr(litert_engine, "missing_packages", lambda: ["ai-edge-litert"])
    db = tmp_path / "r.sqlite"
    code = main(["bench", "mobilenetv2", "--engine", "litert", "--json", "--db", str(db)])
    cap = capsys.readouterr()
    assert code == 2 and cap.out == "" and "ai-edge-litert" in cap.err
    assert len(cap.err.strip().splitlines()) == 1 and not db.exists()


@pytest.mark.slow
def test_bench_cli_sparse_row(tmp_path, capsys):
    import json

    from prunebench.cli import main

    db = tmp_path / "r.sqlite"
    code = main(["bench", "mnist1d-cnn", "--method", "magnitude", "--sparsity", "0.9",
                 "--format", "tflite-sparse", "--engine", "litert", "--min-runs", "3",
                 "--min-time", "0", "--warmup", "1", "--no-rss", "--json", "--db", str(db)])
    out = capsys.readouterr().out
    rep = json.loads(out)                  # stdout is one JSON document (converter quiet)
    assert code in (0, None) and rep["engine"] == "litert" and rep["format"] == "tflite-sparse"
    assert rep["verification"]["ok"] and rep["file_bytes"] > 0


def test_token_id_input_is_fed_in_the_graph_dtype():
    """The converter makes an int64 input (token ids) int32: the engine casts to the graph's
    own input dtype (float32 was fed, and LiteRT refused it)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(40, 8), nn.Flatten(), nn.Linear(48, 16), nn.ReLU(),
                        nn.Linear(16, 5)).eval()
    ids = torch.randint(0, 40, (3, 6), generator=torch.Generator().manual_seed(1))
    pruned = pb.prune(net, "magnitude", 0.8, layers="all", example_input=ids).model
    run = pb.compile(pruned, "tflite-sparse", engine="litert", example_input=ids)
    with torch.no_grad():
        want = pruned(ids)
    torch.testing.assert_close(run(ids), want, rtol=0, atol=1e-5)
