"""Seeds have one validated range everywhere, [0, 2**32 - 1], checked before any model is
loaded or trained and before any file is written (issue 18, item 6). Before: 99999999999999999999999
was a ValueError traceback in train and bench, 2**63 trained, cached, wrote a row and then
raised OverflowError, a spec seed of 10**23 crashed after creating the database, and -1 was
accepted by train and bench but refused by prune and pack."""
from __future__ import annotations

import pytest

from prunebench.cli import main

M = "digits-lenet300"
BAD = ["-1", str(2**32), str(2**63), "99999999999999999999999"]
COMMANDS = {
    "train": ["train", M],
    "bench": ["bench", M, "--db", "{tmp}/r.sqlite"],
    "bench-pruned": ["bench", M, "--method", "magnitude", "--sparsity", "0.5", "--format", "csr",
                     "--db", "{tmp}/r.sqlite"],
    "prune": ["prune", M, "--method", "magnitude", "--sparsity", "0.5"],
    "pack": ["pack", M, "--method", "magnitude", "--sparsity", "0.5", "--format", "csr",
             "-o", "{tmp}/m.pbz"],
    "plan": ["plan", M, "--method", "magnitude", "--sparsity", "0.5"],
    "kernels": ["kernels", "--shape", "8x8"],
}


class TouchedModel(BaseException):
    pass


@pytest.fixture
def tripwire(monkeypatch):
    from prunebench import zoo

    def load(*a, **k):
        raise TouchedModel(f"zoo.load{a} called before the seed was refused")

    monkeypatch.setattr(zoo, "load", load)


@pytest.mark.parametrize("seed", BAD)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_seed_is_one_line_exit_2_before_any_work(command, seed, tripwire, tmp_path, capsys):
    args = [a.format(tmp=tmp_path) for a in COMMANDS[command]] + ["--seed", seed]
    code = main(args)
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, cap
    assert lines == [f"prunebench: error: --seed: got {seed}; allowed: an integer in "
                     f"[0, {2**32 - 1}]"], cap.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seeds", ["[-1]", f"[{2**32}]", f"[{2**63}]", "[100000000000000000000000]",
                                   "[1e23]"])
def test_bad_spec_seed_is_refused_before_the_database(seeds, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"models: [{M}]\nmethods: [magnitude]\nsparsities: [0.5]\nseeds: {seeds}\n"
                    "formats: [dense]\nengines: [torch-dense]\n")
    code = main(["study", str(spec), "--out", str(tmp_path / "runs")])
    cap = capsys.readouterr()
    assert code == 2, cap
    assert cap.err.startswith("prunebench: error: spec") and "seeds[0]" in cap.err, cap.err
    assert len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_api_seed_range():
    from prunebench import zoo
    from prunebench.errors import BadInputError

    assert zoo.check_seed(0) == 0 and zoo.check_seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, True, 1.0):
        with pytest.raises(BadInputError, match="allowed: an integer in"):
            zoo.load(M, seed=bad)
