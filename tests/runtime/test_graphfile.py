"""Graph model files (issue 15, item 2): a model that is not in the zoo is saved as its ONNX
graph plus our encodings and loads in a fresh process that never imports its class; the
outputs equal dense NumPy math on the pruned weights. Crafted files are refused before any
large allocation."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.errors import FormatError
from prunebench.formats import load_container, save_container
from prunebench.runtime.graphfile import GraphModel


class ResidualMLP(nn.Module):  # a class the loading process never sees
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(12, 32), nn.Linear(32, 32), nn.Linear(32, 5)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(torch.relu(self.b(h)) + h)


def _numpy_forward(state, x):
    """The model's math in NumPy, from its (pruned) weights: the independent reference."""
    W = {k: v.detach().numpy().astype(np.float64) for k, v in state.items()}
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    h = relu(x @ W["a.weight"].T + W["a.bias"])
    return relu(h @ W["b.weight"].T + W["b.bias"]) + h, W


def _pruned(seed=0):
    torch.manual_seed(seed)
    model = ResidualMLP().eval()
    return pb.prune(model, "magnitude", 0.9, layers="all", finetune_steps=0).model


def _reference(model, x):
    h, W = _numpy_forward(model.state_dict(), x)
    return h @ W["c.weight"].T + W["c.bias"]


LOAD_CHILD = """
import sys, numpy as np, torch, prunebench as pb
model, manifest = pb.load(sys.argv[1])
x = torch.from_numpy(np.load(sys.argv[2]))
run = pb.compile(model, "dense", engine="onnxruntime")
pb.verify(run, model, x)
np.save(sys.argv[3], run(x).numpy())
print(type(model).__name__, manifest["kind"], "ResidualMLP" in dir(sys.modules.get("__main__")))
"""


@pytest.mark.slow
@pytest.mark.parametrize("format", ["csr", "bitmap"])
def test_graph_file_loads_without_the_class_and_matches_dense_math(tmp_path, format):
    model = _pruned()
    assert float((model.a.weight == 0).float().mean()) == pytest.approx(0.9, abs=0.01)
    x = np.random.default_rng(0).standard_normal((7, 12)).astype(np.float32)
    path = tmp_path / "m.pbz"
    plan = pb.save(path, model, format=format, example_input=torch.from_numpy(x[:1]))
    assert {p["format"] for p in plan.values()} == {format}
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if "wt15b" in p
                                                      or "src" in p))
    r = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(path), str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy")], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["GraphModel", "graph", "False"]
    got = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(got, _reference(model, x), rtol=1e-5, atol=1e-5)
    # the file is smaller than the dense weights it holds (32x32 + 12x32 + 32x5 fp32)
    from prunebench.runtime.modelfile import inspect_model

    info = inspect_model(path)
    assert info["kind"] == "graph" and info["lossless"]
    assert info["nbytes"] < 4 * (32 * 32 + 12 * 32 + 32 * 5) / 3


def test_old_zoo_files_still_load(tmp_path):
    model = pb.zoo.build("mnist1d-mlp")
    pb.save(tmp_path / "z.pbz", model, zoo_name="mnist1d-mlp", format="csr")
    loaded, manifest = pb.load(tmp_path / "z.pbz")
    assert "kind" not in manifest and not isinstance(loaded, GraphModel)
    x = torch.randn(3, 40)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_a_graph_file_needs_an_example_input(tmp_path):
    with pytest.raises(pb.errors.BadInputError, match="example_input"):
        pb.save(tmp_path / "m.pbz", _pruned(), format="csr")


def _craft(tmp_path, change):
    path = tmp_path / "m.pbz"
    pb.save(path, _pruned(), format="csr", example_input=torch.randn(1, 12))
    layers, extra, manifest = load_container(path)
    change(layers, extra, manifest)
    bad = tmp_path / "bad.pbz"
    save_container(bad, layers, extra, manifest)
    return bad


def test_a_manifest_declaring_a_huge_initializer_is_refused_before_decoding(tmp_path):
    def bomb(layers, extra, manifest):
        entry = next(e for e in manifest["graph"]["initializers"] if e[3] is not None)
        entry[1] = [10**6, 10**6]
    bad = _craft(tmp_path, bomb)
    with pytest.raises(FormatError, match="more than the 268,435,456"):
        pb.load(bad)


def test_external_data_and_custom_domains_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    def external(layers, extra, manifest):
        proto = onnx.ModelProto.FromString(extra["onnx"].tobytes())
        t = helper.make_tensor("ext", TensorProto.FLOAT, [1], [0.0])
        t.data_location = TensorProto.EXTERNAL
        t.ClearField("float_data")
        e = t.external_data.add()
        e.key, e.value = "location", "/etc/passwd"
        proto.graph.node.append(helper.make_node("Constant", [], ["c_ext"], value=t))
        extra["onnx"] = np.frombuffer(proto.SerializeToString(), np.uint8)
    with pytest.raises(FormatError, match="external data"):
        pb.load(_craft(tmp_path, external))

    def custom(layers, extra, manifest):
        proto = onnx.ModelProto.FromString(extra["onnx"].tobytes())
        proto.opset_import.add(domain="evil.ops", version=1)
        extra["onnx"] = np.frombuffer(proto.SerializeToString(), np.uint8)
    with pytest.raises(FormatError, match="operator domain 'evil.ops'"):
        pb.load(_craft(tmp_path, custom))


def test_a_layer_of_the_wrong_shape_is_refused(tmp_path):
    def wrong(layers, extra, manifest):
        entry = next(e for e in manifest["graph"]["initializers"] if e[3] is not None)
        entry[1] = [entry[1][0], entry[1][1] + 1]
    with pytest.raises(FormatError, match="shape"):
        pb.load(_craft(tmp_path, wrong))
