"""Every engine runs every trained zoo model pruned at 90% and passes verification against
the dense fp32 model, at batch 256 (matmul paths) and batch 1 (matvec paths).

The trained checkpoint is used when the cache holds it; otherwise (GRU/LSTM on a fresh cache:
training them would take minutes) the architecture keeps its seeded initial weights. The
engines compute on whatever weights they are given, so verification means the same either
way; the inputs are always the real test split.
"""
from __future__ import annotations

import pytest
import torch

from prunebench import engines, zoo
from prunebench.engines import ENGINES
from prunebench.errors import BadInputError
from prunebench.pruning import prunable_layers, prune
from prunebench.runtime import CompiledModel, verify
from prunebench.zoo.models import checkpoint_paths

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODELS = ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-gru", "mnist1d-lstm", "digits-lenet300",
          "digits-lenet5"]
CONFIGS = [("torch-dense", "dense", "fp32"),
           ("native", "csr", "fp32"), ("native", "bsr", "fp32"), ("native", "bitmap", "fp32"),
           ("native", "ell", "fp32"), ("native", "csr", "fp16"), ("native", "bitmap", "int8"),
           ("torch-sparse", "csr", "fp32"), ("torch-sparse", "bsr", "fp32"),
           ("scipy", "csr", "fp32"), ("scipy", "bsr", "fp32"), ("scipy", "coo", "fp32"),
           ("scipy", "csc", "fp32"),
           ("onnxruntime", "dense", "fp32"), ("onnxruntime", "coo", "fp32")]


def _model(name: str, method: str = "magnitude"):
    spec = zoo.get_spec(name)
    trained = checkpoint_paths(spec, 0)[0].exists()
    net, data = zoo.load(name, trained=trained, seed=0)
    layers = prunable_layers(net)
    res = prune(net, method, 0.9, scope="layer" if method == "nm" else "global", layers=layers,
                example_input=data.x_test[:1])
    return res.model.eval(), data


@pytest.fixture(scope="module")
def models():
    return {name: _model(name) for name in MODELS}


def _check(run, net, data, values):
    x, y = data.x_test[:256], data.y_test[:256]
    v = verify(run, net, x, y, values=values, batch_size=256, raise_on_fail=False)
    assert v.ok, v.reason
    v1 = verify(run, net, x[:6], y[:6], values=values, batch_size=1, raise_on_fail=False)
    assert v1.ok, v1.reason
    if values == "fp32":
        assert v.top1_agreement == 1.0 and v.rel_max < 1e-4
    return v


@pytest.mark.parametrize("engine, fmt, values", CONFIGS, ids=["-".join(c) for c in CONFIGS])
@pytest.mark.parametrize("name", MODELS)
def test_engine_runs_zoo_model_and_verifies(models, name, engine, fmt, values):
    net, data = models[name]
    run = engines.compile(net, engine, fmt, values=values, threads=1, keep_smaller=False,
                          example_input=data.x_test[:1])
    _check(run, net, data, values)
    if isinstance(run, CompiledModel):
        # every pruned matrix really runs on the format
        assert run.sparse_layers() and {p["format"] for p in run.plan.values()} == {fmt}
        assert run.engine == engine
    if engine == "onnxruntime" and fmt == "coo":
        assert run.file_bytes < run.dense_file_bytes / 2
        assert any(p["sparse"] for p in run.plan.values())


@pytest.mark.parametrize("name", MODELS)
def test_native_nm_on_nm_pruned_models(name):
    try:
        net, data = _model(name, "nm")
    except BadInputError as e:      # mnist1d-cnn: no fan-in (5, 75, 125) is a multiple of 4
        pytest.skip(f"2:4 fits no layer of {name}: {e}")
    run = engines.compile(net, "native", "nm", threads=1, keep_smaller=False)
    _check(run, net, data, "fp32")
    assert "nm" in {p["format"] for p in run.plan.values()}


def test_two_threads(models):
    net, data = models["digits-lenet5"]
    for engine, fmt in (("native", "bitmap"), ("torch-sparse", "csr"), ("onnxruntime", "dense")):
        run = engines.compile(net, engine, fmt, threads=2, example_input=data.x_test[:1])
        _check(run, net, data, "fp32")
    scipy_run = engines.compile(net, "scipy", "csr", threads=2)
    assert scipy_run.threads_effective == 1 and ENGINES.get("scipy").threads_effective(2) == 1


def test_protocol_lists_formats_values_and_rnn_path():
    assert set(ENGINES.names()) >= {"torch-dense", "torch-sparse", "scipy", "onnxruntime",
                                    "native"}
    assert ENGINES.get("native").formats == ("csr", "delta8", "bsr", "bitmap", "nm", "ell", "panel", "cbcsr")
    assert ENGINES.get("native").values == ("fp32", "fp16", "int8")
    assert ENGINES.get("torch-sparse").formats == ("csr", "bsr")
    assert ENGINES.get("scipy").formats == ("csr", "bsr", "coo", "csc")
    assert ENGINES.get("onnxruntime").formats == ("dense", "coo")
    assert all(ENGINES.get(e).rnn for e in ENGINES.names())


@pytest.mark.parametrize("engine, fmt, values, needle", [
    ("scipy", "bitmap", "fp32", "engine 'scipy' cannot run format 'bitmap'"),
    ("torch-sparse", "csr", "int8", "engine 'torch-sparse' cannot run values 'int8'"),
    ("onnxruntime", "csr", "fp32", "engine 'onnxruntime' cannot run format 'csr'"),
    ("fpga", "csr", "fp32", "unknown engine 'fpga'"),
])
def test_engine_refuses_what_it_cannot_run(models, engine, fmt, values, needle):
    net, _ = models["mnist1d-mlp"]
    with pytest.raises(BadInputError, match=needle):
        engines.compile(net, engine, fmt, values=values)


def test_onnx_sparse_initializers_densify_but_run(models):
    import onnx

    net, data = models["digits-lenet300"]
    run = engines.compile(net, "onnxruntime", "coo", example_input=data.x_test[:1])
    proto = onnx.load_from_string(run.onnx_bytes)
    assert len(proto.graph.sparse_initializer) == 3
    assert "densified" in run.note
    _check(run, net, data, "fp32")


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("kwargs,shape", [(dict(batch_first=True), (3, 9, 6)),
                                          (dict(num_layers=2, bidirectional=True), (9, 3, 6)),
                                          (dict(bias=False), (9, 6)),            # unbatched
                                          (dict(batch_first=True, hx=True), (2, 5, 6))])
def test_projected_lstm_equals_nn_lstm_and_runs_on_onnxruntime(kwargs, shape):
    """ONNX's LSTM operator has no projection: the export writes such an LSTM out as
    products and gates (ProjectedLSTM), which must compute what nn.LSTM computes."""
    from torch import nn

    from prunebench.engines.onnx_engine import ProjectedLSTM

    torch.manual_seed(0)
    hx = kwargs.pop("hx", False)
    lstm = nn.LSTM(6, 16, proj_size=8, **kwargs).eval()
    x = torch.randn(*shape)
    state = None
    if hx:
        state = (torch.randn(1, shape[0], 8), torch.randn(1, shape[0], 16))
    with torch.no_grad():
        want, (h, c) = lstm(x, state)
        got, (h2, c2) = ProjectedLSTM(lstm)(x, state)
    for a, b in ((got, want), (h2, h), (c2, c)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    if not hx and kwargs.get("batch_first"):   # the export makes dim 0 the batch
        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = lstm

            def forward(self, x):
                return self.rnn(x)[0]

        net = Head().eval()
        run = engines.compile(net, "onnxruntime", "dense", example_input=x)
        assert verify(run, net, x).ok
