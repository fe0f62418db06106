"""Gate-aware pruning of GRU/LSTM weight matrices."""
from __future__ import annotations

import pytest
import torch

from prunebench.errors import BadInputError
from prunebench.pruning import prune
from .pruning_helpers import RNNNet

GATES = {"gru": 3, "lstm": 4, "rnn": 1}


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("method", ["magnitude", "block", "nm"])
def test_every_gate_matrix_gets_the_same_sparsity(cell, method):
    torch.manual_seed(0)
    model = RNNNet(cell, hidden=16, layers=2, bidirectional=True)
    x = torch.randn(5, 40)
    result = prune(model, method, 0.75, layers=["rnn"], block=(4, 4), n=1, m=4)
    rnn = result.model.rnn
    names = [n for n, _ in rnn.named_parameters() if n.startswith("weight")]
    assert len(names) == 8  # ih and hh, 2 layers, 2 directions
    assert sorted(result.masks) == sorted(f"rnn.{n}" for n in names)
    for name in names:
        w = getattr(rnn, name).detach()
        gates = w.reshape(GATES[cell], 16, -1)
        for g in range(GATES[cell]):
            assert abs(float((gates[g] == 0).float().mean()) - 0.75) <= 0.005, (name, g)
        assert w.shape == getattr(model.rnn, name).shape
    for name, p in rnn.named_parameters():
        if name.startswith("bias"):
            assert torch.equal(p, getattr(model.rnn, name))
    out = result.model(x)
    assert out.shape == (5, 10) and torch.isfinite(out).all()


def test_gate_aware_differs_from_whole_matrix_ranking():
    """Ranking per gate keeps every gate alive even when one gate's weights are all small."""
    torch.manual_seed(0)
    model = RNNNet("gru", hidden=16, layers=1, bidirectional=False)
    with torch.no_grad():
        model.rnn.weight_hh_l0[:16] *= 1e-3  # the reset gate's block
    result = prune(model, "magnitude", 0.5, layers=["rnn"])
    gates = result.masks["rnn.weight_hh_l0"].reshape(3, 16, 16)
    assert [float(g.float().mean()) for g in gates] == [0.5, 0.5, 0.5]


@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_lstm_with_projection_and_fine_tuning(data):
    torch.manual_seed(0)
    model = RNNNet("lstm", hidden=16, layers=1, bidirectional=False)
    model.rnn = torch.nn.LSTM(4, 16, proj_size=8, batch_first=True)
    model.fc = torch.nn.Linear(8, 10)
    result = prune(model, "magnitude", 0.6, layers=["rnn"], finetune=data, finetune_steps=20)
    assert sorted(result.masks) == ["rnn.weight_hh_l0", "rnn.weight_hr_l0", "rnn.weight_ih_l0"]
    assert result.masks["rnn.weight_hr_l0"].shape == (8, 16)
    for name, mask in result.masks.items():
        w = result.model.get_parameter(name).detach()
        assert bool((w[~mask] == 0).all())
    assert torch.isfinite(result.model(data.x_test[:4])).all()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_channel_pruning_of_rnn_hidden_units_is_refused(cell):
    model = RNNNet(cell, hidden=16, layers=1)
    with pytest.raises(BadInputError, match="hidden units of 'rnn'"):
        prune(model, "channel", 0.5, example_input=torch.randn(2, 40))
