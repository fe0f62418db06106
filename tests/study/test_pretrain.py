"""Missing checkpoints trained two at a time (this process and a child) before a study
times anything: the same bits as training one after the other, Ctrl-C kills the child, a
failed child only costs time."""
from __future__ import annotations

import subprocess
import sys

import pytest

from prunebench.zoo import pretrain

PAIRS = [("digits-lenet300", 0), ("digits-lenet300", 1)]


def test_split_balances_the_estimated_cost():
    cost = {("a", 0): 10.0, ("b", 0): 6.0, ("c", 0): 5.0, ("d", 0): 1.0}
    one, two = pretrain.split(list(cost), lambda *p: cost[p])
    assert sorted(one + two) == sorted(cost)
    loads = sorted(sum(cost[p] for p in side) for side in (one, two))
    assert loads == [10.0, 12.0] or loads == [11.0, 11.0]


@pytest.mark.slow
def test_two_processes_train_the_same_bits_as_one(tmp_path, monkeypatch):
    from prunebench import zoo
    from prunebench.zoo import models

    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "serial"))
    for name, seed in PAIRS:
        zoo.load(name, trained=True, seed=seed)
    serial = {s: models.checkpoint_paths(models.get_spec(n), s)[0].read_bytes()
              for n, s in PAIRS}

    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "pair"))
    assert pretrain.missing(PAIRS) == PAIRS
    seen = []
    assert pretrain.train_missing(PAIRS, on_trained=lambda *p: seen.append(p)) == 2
    assert sorted(seen) == PAIRS and pretrain.missing(PAIRS) == []
    for n, s in PAIRS:
        assert models.checkpoint_paths(models.get_spec(n), s)[0].read_bytes() == serial[s]


@pytest.mark.slow
def test_interrupt_kills_the_child_and_propagates(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    children = []
    real = subprocess.Popen

    def spy(*a, **k):
        children.append(real(*a, **k))
        return children[-1]

    monkeypatch.setattr(subprocess, "Popen", spy)

    def interrupted(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain.train_missing(PAIRS, on_trained=interrupted)
    assert len(children) == 1 and children[0].poll() is not None   # not left running


@pytest.mark.slow
def test_a_failed_child_leaves_its_share_to_the_caller(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda args, **k: real(
        [sys.executable, "-c", "import sys; sys.exit('no space left on device')"], **k))
    assert pretrain.train_missing(PAIRS) == 2
    assert "no space left on device" in capsys.readouterr().err
    assert len(pretrain.missing(PAIRS)) == 1     # the caller's half is trained, not the child's
