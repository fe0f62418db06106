"""Small models and a synthetic dataset shared by the pruning tests."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from prunebench.zoo import Dataset


class MLP(nn.Module):
    """40-64-64-48-10 ReLU MLP: three hidden layers so the default selection keeps two."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(40, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 48)
        self.fc4 = nn.Linear(48, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = F.relu(self.fc3(x))
        return self.fc4(x)


class CNN1D(nn.Module):
    """Like zoo mnist1d-cnn: three Conv1d of 25 channels with stride 2, then a Linear over the
    flattened features."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 25, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(25, 25, 3, stride=2, padding=1)
        self.fc = nn.Linear(25 * 5, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x.unsqueeze(1)))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.fc(x.flatten(1))


class RNNNet(nn.Module):
    def __init__(self, cell: str = "gru", hidden: int = 16, layers: int = 2,
                 bidirectional: bool = True):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[cell]
        self.rnn = rnn(4, hidden, num_layers=layers, batch_first=True,
                       bidirectional=bidirectional)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), 10)

    def forward(self, x):
        out, _ = self.rnn(x.reshape(x.shape[0], 10, 4))
        return self.fc(out[:, -1])


def synthetic_dataset(n_train: int = 512, n_test: int = 256, seed: int = 0) -> Dataset:
    """[N, 40] Gaussian inputs labelled by a fixed random linear teacher (10 classes)."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(40, 10, generator=g)
    x_tr = torch.randn(n_train, 40, generator=g)
    x_te = torch.randn(n_test, 40, generator=g)
    return Dataset("synthetic", x_tr, (x_tr @ teacher).argmax(1), x_te, (x_te @ teacher).argmax(1),
                   10)
