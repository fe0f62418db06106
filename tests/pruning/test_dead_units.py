"""Dead units: outputs with no incoming weight and inputs with no outgoing weight, counted on
hand-built masks whose answer is read off the matrix."""

import pytest
import torch
from torch import nn

from prunebench.pruning.accounting import dead_units, sparsity_report


def test_linear_rows_and_columns():
    w = torch.ones(4, 5)
    w[1] = 0            # output 1: no incoming weight
    w[3] = 0            # output 3 too
    w[:, 0] = 0         # input 0: read by no output
    w[:, 4] = 0
    w[0, 2] = 0         # a single zero disconnects nothing
    assert dead_units(w) == {"dead_out": 2, "outputs": 4, "dead_in": 2, "inputs": 5}


def test_conv_channels():
    w = torch.ones(3, 2, 2, 2)      # 3 filters over 2 input channels, 2x2 kernels
    w[0] = 0                         # filter 0 removed entirely
    w[:, 1] = 0                      # input channel 1 read by no filter
    w[2, 0, 1, 1] = 0                # filter 2 keeps 3 of its 4 weights on channel 0
    assert dead_units(w) == {"dead_out": 1, "outputs": 3, "dead_in": 1, "inputs": 2}


def test_gate_weights_count_a_unit_dead_only_when_every_gate_is():
    w = torch.ones(4 * 2, 3)         # LSTM weight_ih: 4 gates x 2 hidden units, 3 inputs
    for gate in range(4):
        w[gate * 2 + 1] = 0          # unit 1: zero in every gate -> dead
    for gate in range(3):
        w[gate * 2] = 0              # unit 0: zero in 3 gates, alive through the 4th
    assert dead_units(w, gates=4) == {"dead_out": 1, "outputs": 2, "dead_in": 0, "inputs": 3}


def test_sparsity_report_counts_from_masks_and_weights():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[2] = False
    mask[:, 1] = False
    rep = sparsity_report(model, masks={"0.weight": mask})
    lay = {x["name"]: x for x in rep["layers"]}
    assert (lay["0.weight"]["dead_out"], lay["0.weight"]["dead_in"]) == (1, 1)
    assert (lay["2.weight"]["dead_out"], lay["2.weight"]["inputs"]) == (0, 4)
    with torch.no_grad():
        model[2].weight[:, 3] = 0     # nothing reads hidden unit 3 any more
    lay = {x["name"]: x for x in sparsity_report(model)["layers"]}
    assert (lay["2.weight"]["dead_in"], lay["0.weight"]["dead_out"]) == (1, 0)


def test_report_table_beside_accuracy(tmp_path):
    from ..report.synthetic import ACC, _prune_row

    from prunebench.measure import fingerprint
    from prunebench.report import data as D
    from prunebench.report import load
    from prunebench.study.store import Store

    path = tmp_path / "dead.sqlite"
    with Store(path) as s:
        for seed in range(3):
            for label, dead in (("magnitude", 10 + seed), ("random", 0)):
                r = _prune_row("digits-lenet300", label, 0.95, seed, ACC[(label, 0.95)][seed])
                r["extra"]["layers"][0].update(dead_out=dead, outputs=100, dead_in=30 * seed,
                                               inputs=300, pruned=True)
                s.add(r, fingerprint())
    t = D.dead_units_table(load(path)).set_index("method_label")
    m = t.loc["magnitude"]
    assert m.dead_out == pytest.approx(11.0) and m.outputs == 100       # (10 + 11 + 12) / 3
    assert m.dead_in == pytest.approx(30.0) and m.inputs == 300         # (0 + 30 + 60) / 3
    assert (m.worst_layer, m.worst_dead_out, m.n) == ("layers.1.weight", 10, 3)   # seed 0
    assert m.acc_mean == pytest.approx(0.92) and m.acc_std == pytest.approx(0.02)
    assert t.loc["random"].dead_out == 0
