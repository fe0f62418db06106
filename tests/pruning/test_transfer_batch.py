"""The inputs a distilled student is matched to the teacher on (``train.transfer_batch``):
the labelled batch, a mixup of it with itself and a noisy copy, checked against direct
arithmetic on the batch."""
from __future__ import annotations

import torch
from torch import nn

from prunebench import train
from prunebench.zoo.datasets import Dataset


def _batch(shape=(64, 40), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2.0 + 1.0


def test_first_third_is_the_batch_itself():
    x = _batch()
    out = train.transfer_batch(x, torch.Generator().manual_seed(1))
    assert out.shape == (3 * len(x), x.shape[1])
    assert torch.equal(out[:len(x)], x)


def test_mixed_rows_are_convex_combinations_of_two_batch_rows():
    x = _batch()
    mixed = train.transfer_batch(x, torch.Generator().manual_seed(1))[len(x):2 * len(x)]
    n_interior = 0
    for i, row in enumerate(mixed):
        # row = lam * x[i] + (1 - lam) * x[j] for one j and lam in [0, 1]: solve per j
        d = x[i] - x                                      # [n, features]
        denom = (d * d).sum(1)
        lam = torch.where(denom > 0, ((row - x) * d).sum(1) / denom.clamp_min(1e-12),
                          torch.ones_like(denom))
        resid = (lam[:, None] * x[i] + (1 - lam[:, None]) * x - row).abs().amax(1)
        j = int(resid.argmin())
        assert resid[j] < 1e-4 and -1e-5 <= float(lam[j]) <= 1 + 1e-5
        n_interior += 0.05 < float(lam[j]) < 0.95
    assert n_interior > len(x) // 2          # weights are spread over [0, 1], not 0 or 1


def test_noisy_copy_has_the_stated_noise_level():
    x = _batch((4096, 40))
    noisy = train.transfer_batch(x, torch.Generator().manual_seed(2))[2 * len(x):]
    noise = noisy - x
    expected = train.DISTILL_NOISE * float(x.std())
    assert abs(float(noise.std()) - expected) < 0.02 * expected
    assert abs(float(noise.mean())) < 0.01 * expected


def test_same_generator_same_batch_and_image_shaped_inputs():
    x = _batch((8, 1, 5, 5))
    a = train.transfer_batch(x, torch.Generator().manual_seed(3))
    b = train.transfer_batch(x, torch.Generator().manual_seed(3))
    assert a.shape == (24, 1, 5, 5) and torch.equal(a, b)


def test_token_ids_are_left_alone():
    ids = torch.randint(0, 100, (8, 16))
    assert train.transfer_batch(ids, torch.Generator().manual_seed(0)) is ids


def test_distillation_defaults_to_its_own_learning_rate(monkeypatch):
    """fit(teacher=...) without lr uses DISTILL_LR, without a teacher TRAIN_LR."""
    seen = []
    real_adam = torch.optim.Adam

    def spy(params, lr, **kw):
        seen.append(lr)
        return real_adam(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    g = torch.Generator().manual_seed(0)
    data = Dataset("toy", torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g),
                   torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g), 3)
    teacher = nn.Linear(4, 3)
    train.fit(nn.Linear(4, 3), data, steps=2, batch_size=8)
    train.fit(nn.Linear(4, 3), data, steps=2, batch_size=8, teacher=teacher)
    train.fit(nn.Linear(4, 3), data, steps=2, batch_size=8, teacher=teacher, lr=5e-4)
    assert seen == [train.TRAIN_LR, train.DISTILL_LR, 5e-4]
