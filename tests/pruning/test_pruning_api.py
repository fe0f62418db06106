"""The public door: argument checks, registries, the report's shape."""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunebench.errors import BadInputError
from prunebench.pruning import METHODS, SCHEDULES, prune

REPORT_KEYS = {"method", "scope", "schedule", "sparsity_requested", "sparsity_achieved",
               "accuracy_dense", "accuracy_pruned", "accuracy_pruned_before_finetune",
               "layers", "totals"}
LAYER_KEYS = {"name", "shape", "sparsity", "params", "nonzero", "macs", "macs_nonzero"}
TOTAL_KEYS = {"params", "nonzero", "macs", "macs_nonzero", "theoretical_speedup"}


def test_registries_list_the_documented_names():
    assert set(METHODS) == {"random", "magnitude", "gradient", "taylor", "block", "nm",
                            "channel"}
    assert {"oneshot", "iterative", "gradual", "rewind"} <= set(SCHEDULES)


@pytest.mark.parametrize("kwargs,match", [
    (dict(sparsity=1.0), r"sparsity=1.0 should be a float in \[0, 1\)"),
    (dict(sparsity=-0.1), r"sparsity=-0.1 should be a float in \[0, 1\)"),
    (dict(sparsity=float("nan")), "sparsity=nan"),
    (dict(sparsity=True), "sparsity=True"),
    (dict(sparsity="0.5"), "sparsity='0.5'"),
    (dict(method="l0"), "unknown method 'l0'; valid: .*magnitude"),
    (dict(scope="row"), "unknown scope 'row'; valid: global, layer"),
    (dict(schedule="cosine"), "unknown schedule 'cosine'; valid: .*oneshot"),
    (dict(layers=["fc9"]), "layers: 'fc9' is not a prunable module .* fc1, fc2"),
    (dict(layers=[]), "layers=.*non-empty"),
    (dict(layers="fc2"), "layers='fc2'"),
    (dict(schedule="iterative", rounds=0), "rounds=0 should be an integer >= 1"),
    (dict(rounds=5), r"rounds=5 is not used by schedule='oneshot'; allowed only with schedule "
                     "iterative, iterative-linear, rewind"),
    (dict(schedule="iterative", rewind_state={}),
     "rewind_state is not used by schedule='iterative'; allowed only with schedule rewind"),
    (dict(finetune_steps=-1), "finetune_steps=-1"),
    (dict(method="gradient"), "needs labelled data"),
    (dict(calibration=torch.zeros(3)), "calibration=Tensor should be a pair"),
    (dict(finetune=[1, 2]), "finetune=list should be a prunebench.zoo.Dataset"),
])
def test_bad_arguments_name_argument_value_and_allowed(mlp, kwargs, match):
    with pytest.raises(BadInputError, match=match):
        prune(mlp, **kwargs)


def test_layers_all_prunes_first_and_last_layers_too(mlp):
    default = prune(mlp, "magnitude", 0.5).report()["pruned_layers"]
    everything = prune(mlp, "magnitude", 0.5, layers="all").report()["pruned_layers"]
    assert everything == [n for n, m in mlp.named_modules() if isinstance(m, nn.Linear)]
    assert len(everything) == len(default) + 2


def test_model_without_prunable_layers():
    with pytest.raises(BadInputError, match="no prunable layers"):
        prune(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))


def test_report_is_json_and_complete(mlp, data):
    result = prune(mlp, "magnitude", 0.8, finetune=data, finetune_steps=5)
    report = result.report()
    assert REPORT_KEYS <= set(report)
    assert all(LAYER_KEYS <= set(row) for row in report["layers"])
    assert TOTAL_KEYS <= set(report["totals"])
    json.loads(json.dumps(report))
    assert report["sparsity_requested"] == 0.8
    assert all(isinstance(report[k], float) for k in
               ("accuracy_dense", "accuracy_pruned", "accuracy_pruned_before_finetune"))
    report["method"] = "changed"  # report() hands out a copy
    assert result.report()["method"] == "magnitude"


def test_report_without_data_has_no_accuracies(mlp):
    report = prune(mlp, "magnitude", 0.5).report()
    assert report["accuracy_dense"] is None and report["accuracy_pruned"] is None
    assert report["accuracy_pruned_before_finetune"] is None
    assert report["totals"]["macs"] is None  # no example input to count with


def test_example_input_enables_macs(mlp):
    report = prune(mlp, "magnitude", 0.5, example_input=torch.zeros(1, 40)).report()
    # fc2 (64x64) and fc3 (64x48) at 50%, fc1 and fc4 dense
    dense = 40 * 64 + 64 * 64 + 64 * 48 + 48 * 10
    assert report["totals"]["macs"] == dense
    assert report["totals"]["macs_nonzero"] == dense - (64 * 64 + 64 * 48) // 2


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 24), cols=st.integers(1, 24),
       sparsity=st.floats(0.0, 0.99), seed=st.integers(0, 2**16))
def test_any_shape_matches_l1_unstructured(rows, cols, sparsity, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(cols, rows))
    result = prune(model, "magnitude", sparsity)
    reference = nn.Linear(cols, rows)
    reference.load_state_dict(model[0].state_dict())
    torch_prune.l1_unstructured(reference, "weight", amount=sparsity)
    # random floats have no ties, so the masks are equal
    assert torch.equal(result.masks["0.weight"], reference.weight_mask.bool())
