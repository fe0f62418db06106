"""The planner's engine choice (prunebench.hosts): the fastest of the per-layer plan and the
whole-graph engines wins, what it compiles to computes the pruned model, bad hosts are refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.errors import BadInputError
from prunebench.hosts import HOSTS, parse_hosts

pytest.importorskip("openvino")


class Timings:
    """Every candidate 1 ms, except the ones named in ``fast`` (0.1 ms) for the label."""

    def __init__(self, fast: dict[str, str]):
        self.fast = fast
        self.labels = []

    def __call__(self, fns, *, rounds, label):
        self.labels.append(label)
        return {k: 0.1 if self.fast.get(label) == k else 1.0 for k in fns}


def _pruned():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(40, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                        nn.Linear(200, 10)).eval()
    return pb.prune(net, "magnitude", 0.9, layers=["0", "2"]).model


@pytest.mark.slow
@pytest.mark.parametrize("winner, kind", [("onnxruntime/dense", "OrtModel"),
                                          ("openvino/csr", "OpenVinoModel"),
                                          ("planned", None)])
def test_fastest_host_is_chosen_and_computes_the_model(winner, kind):
    model = _pruned()
    x = torch.randn(4, 40)
    timer = Timings({"engines": winner})
    p = pb.plan(model, x, hosts=True, timer=timer, cache=False)
    assert "engines" in timer.labels
    assert set(p.host["times_ms"]) == {"planned", *("/".join(h) for h in HOSTS)}
    assert p.host["format"] == ("planned" if winner == "planned" else winner.split("/")[1])
    run = p.compile(model)
    if kind:
        assert type(run).__name__ == kind
    with torch.no_grad():
        ref = model(x)
    np.testing.assert_allclose(run(x).numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    assert p.to_json()["host"] == p.host


def test_without_hosts_the_plan_is_unchanged():
    p = pb.plan(_pruned(), torch.randn(2, 40), timer=Timings({}), cache=False)
    assert p.host is None


def test_bad_hosts_are_refused():
    assert parse_hosts(["onnxruntime"]) == (("onnxruntime", "dense"),)
    assert parse_hosts("openvino/csr,onnxruntime/dense") == (("openvino", "csr"),
                                                             ("onnxruntime", "dense"))
    with pytest.raises(BadInputError, match="ENGINE"):
        parse_hosts(["tensorrt"])
    with pytest.raises(BadInputError, match="ENGINE"):
        parse_hosts(["onnxruntime/csr"])
