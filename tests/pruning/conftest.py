"""Fixtures for the pruning tests (no zoo training needed)."""
from __future__ import annotations

import pytest
import torch

from .pruning_helpers import CNN1D, MLP, synthetic_dataset

torch.set_num_threads(1)


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return MLP()


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return CNN1D()


@pytest.fixture(scope="session")
def data():
    return synthetic_dataset()
