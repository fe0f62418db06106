"""Zoo: architectures against published parameter counts, datasets, and the accuracy floors
of the foundation issue (trained once, then loaded from the checkpoint cache)."""
import numpy as np
import pytest
import torch

from prunebench import zoo
from prunebench.errors import BadInputError
from prunebench.train import evaluate


@pytest.mark.parametrize("name, params", [
    ("resnet18", 11_689_512),      # torchvision.models.resnet18()
    ("mobilenetv2", 3_504_872),    # torchvision.models.mobilenet_v2()
    ("digits-lenet300", 64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10),
    ("mlp-4096", 3 * (4096 * 4096 + 4096)),
    ("mnist1d-mlp", 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10),
])
def test_parameter_counts(name, params):
    assert zoo.count_params(zoo.build(name)) == params


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_imagenet_models_forward(name):
    torch.set_num_threads(1)
    m = zoo.build(name)
    with torch.no_grad():
        assert m(zoo.get_spec(name).example_input(1)).shape == (1, 1000)


def test_mobilenetv2_has_depthwise_and_pointwise_convs():
    m = zoo.build("mobilenetv2")
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    depthwise = [c for c in convs if c.groups > 1 and c.groups == c.in_channels]
    pointwise = [c for c in convs if c.kernel_size == (1, 1)]
    assert len(convs) == 52 and len(depthwise) == 17 and len(pointwise) == 34


def test_mnist1d_matches_package_defaults():
    d = zoo.load_dataset("mnist1d")
    assert d.x_train.shape == (4000, 40) and d.x_test.shape == (1000, 40)
    assert sorted(torch.unique(d.y_test).tolist()) == list(range(10))
    from mnist1d.data import get_dataset_args, make_dataset

    fresh = make_dataset(get_dataset_args())  # regenerated, not from our cache
    np.testing.assert_array_equal(d.x_test.numpy(), fresh["x_test"].astype(np.float32))
    np.testing.assert_array_equal(d.y_train.numpy(), fresh["y"])


def test_digits_split_deterministic():
    a, b, c = zoo.load_dataset("digits", 0), zoo.load_dataset("digits", 0), zoo.load_dataset(
        "digits", 1)
    assert len(a.y_train) + len(a.y_test) == 1797
    assert torch.equal(a.x_test, b.x_test) and not torch.equal(a.x_test, c.x_test)
    assert float(a.x_train.max()) == 1.0


def test_unknown_names_list_valid_ones():
    with pytest.raises(BadInputError, match="valid: .*mnist1d-cnn"):
        zoo.get_spec("mnist1d-transformer")
    with pytest.raises(BadInputError, match="valid: digits, mnist1d"):
        zoo.load_dataset("cifar")
    with pytest.raises(BadInputError, match="seed"):
        zoo.load("mnist1d-mlp", seed="1")


# The floors are the foundation issue's, set under the published MNIST-1D baselines
# (mnist1d README: CNN 94%, GRU 91%, MLP 68%; reference notebook 92.3 / 89.1 / 65.1); the LSTM
# has the GRU's, the 500-wide MLP the MLP's. Issue 16: every seed 0-2 must reach them.
FLOORS = {"mnist1d-cnn": 0.90, "mnist1d-gru": 0.85, "mnist1d-lstm": 0.85, "mnist1d-mlp": 0.60,
          "mnist1d-mlp500": 0.60, "digits-lenet300": 0.95, "digits-lenet5": 0.93}
# seed 0 runs in `make test` where the checkpoint is trained there anyway or in seconds
# (digits-lenet5); the other 16 cases train 14 models `make test` does not (21 minutes on the
# loaded 2-core machine, see README "Model zoo") and run with `pytest -m all_seeds
# tests/test_zoo.py`; test_lstm_starts_with_forget_gate_bias_one guards the LSTM's fix
DEFAULT_RUN = {"mnist1d-cnn", "mnist1d-gru", "mnist1d-mlp", "digits-lenet300", "digits-lenet5"}
FLOOR_CASES = [pytest.param(name, seed, marks=[pytest.mark.slow] + (
    [] if seed == 0 and name in DEFAULT_RUN else [pytest.mark.all_seeds]))
    for name in sorted(FLOORS) for seed in (0, 1, 2)]


def test_every_trained_small_zoo_model_has_a_floor():
    small = {n for n in zoo.MODELS.names() if n.split("-")[0] in ("mnist1d", "digits")
             and zoo.get_spec(n).trained and "matched" not in n}
    assert small == set(FLOORS)


@pytest.mark.parametrize("name, seed", FLOOR_CASES)
def test_accuracy_floor(name, seed):
    torch.set_num_threads(2)
    model, data = zoo.load(name, trained=True, seed=seed)
    acc = evaluate(model, data)
    assert acc >= FLOORS[name], f"{name} seed {seed}: {acc:.3f} < {FLOORS[name]}"


def test_lstm_starts_with_forget_gate_bias_one():
    """What keeps every seed of mnist1d-lstm off the chance plateau (b_ih + b_hh on the
    forget gate, PyTorch's gate order i, f, g, o); the other gates keep PyTorch's init."""
    rnn = zoo.build("mnist1d-lstm", seed=2).rnn
    h = rnn.hidden_size
    total = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach()
    assert torch.equal(total[h:2 * h], torch.ones(h))
    bound = 1 / h ** 0.5
    assert float(rnn.bias_ih_l0[:h].detach().abs().max()) <= bound and len(total.unique()) > 1


def test_checkpoint_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    spec = zoo.get_spec("digits-lenet300")
    ckpt, init = zoo.models.checkpoint_paths(spec, 3)
    assert not ckpt.exists()
    m1, data = zoo.load("digits-lenet300", seed=3)
    assert ckpt.exists() and init.exists()
    m2, _ = zoo.load("digits-lenet300", seed=3)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    assert evaluate(m2, data) == evaluate(m1, data)


# ---------------------------------------------------------------- what the zoo may import

#: packages above the zoo in the data flow (docs/ARCHITECTURE.md): what they register in it
#: is handed down (zoo.user's builder, pretrain's ``registers``), never imported by the zoo
_ABOVE_THE_ZOO = ("runtime", "engines", "measure", "planner", "study", "report", "cli",
                  "usermodel", "benchmark", "hosts")


def test_the_zoo_imports_nothing_above_it():
    """Read from the source with ``ast`` (imports inside functions count too)."""
    import ast
    from pathlib import Path

    found = []
    for path in sorted(Path(zoo.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2 and node.module:
                top = node.module.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.startswith("prunebench."):
                top = node.module.split(".")[1]
            else:
                continue
            if top in _ABOVE_THE_ZOO:
                found.append(f"{path.name}:{node.lineno} imports {top}")
    assert not found, found


def test_a_child_builds_the_user_models_its_parent_registered(monkeypatch):
    """The records travel in the environment; the builder usermodel installed (importing
    prunebench installs it) makes the zoo entry on the child's first look-up."""
    import json

    from prunebench.errors import PrunebenchError
    from prunebench.zoo import user

    rec = {"name": "tests.fake:net", "factory": "tests.fake:net"}
    built = []
    monkeypatch.setenv(user.ENV, json.dumps({rec["name"]: rec}))
    monkeypatch.setattr(user, "_builder", lambda r: built.append(r) or r["name"])
    assert user.is_user_model("tests.fake:net") and not user.is_user_model("mnist1d-mlp")
    user.register_from_env("tests.fake:net")
    assert built == [rec]
    user.register_from_env("mnist1d-mlp")        # not a user model: nothing built
    assert built == [rec]

    monkeypatch.setattr(user, "_builder", None)
    with pytest.raises(PrunebenchError, match="prunebench.usermodel, which builds it"):
        user.register_from_env("tests.fake:net")
    monkeypatch.setenv(user.ENV, "not json")
    assert user.env_records() == {} and not user.is_user_model("tests.fake:net")


def test_importing_prunebench_installs_the_user_model_builder():
    from prunebench import usermodel
    from prunebench.zoo import user

    assert user._builder is not None and user._builder.__module__ == usermodel.__name__


def test_the_pretrain_child_imports_the_modules_it_is_told(tmp_path, monkeypatch):
    """``--register=MODULE`` is imported before any checkpoint is looked at (a study's
    controls register their models that way; the zoo itself never imports the study)."""
    import sys

    from prunebench.zoo import pretrain

    (tmp_path / "pb_registers_here.py").write_text("IMPORTED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pb_registers_here", raising=False)
    assert pretrain.main(["--register=pb_registers_here"]) == 0
    assert sys.modules["pb_registers_here"].IMPORTED
