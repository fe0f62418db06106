"""Model files whose JSON manifest is well-formed but crafted (issue 18, item 5) are refused by
``pb.load``, ``inspect`` and ``bench FILE`` with one line and exit 2, before anything is
written: deep nesting (was a RecursionError), ``info.prune`` a string and a planner record's
``times_ms`` a list (were AttributeErrors), ``info.prune.sparsity_achieved = 'lots'`` (was
stored by ``bench`` and then broke ``results``), ``info.prune.method`` a dict (the database
write failed and left an empty database)."""
from __future__ import annotations

import json

import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from prunebench.cli import main
from prunebench.errors import PrunebenchError
from prunebench.formats.container import KEY


@pytest.fixture(scope="module")
def real_file(tmp_path_factory):
    from prunebench import zoo
    from prunebench.runtime.modelfile import save_model

    path = tmp_path_factory.mktemp("real") / "lenet.pbz"
    save_model(path, zoo.get_spec("digits-lenet300").build(), zoo_name="digits-lenet300", format="csr",
               keep_smaller=False, info={"prune": {"method": "magnitude", "scope": "layer",
                                                   "sparsity_achieved": 0.0}})
    return path


def _craft(real, path, change) -> None:
    """Copy ``real`` to ``path`` with its header changed by ``change(header) -> text``."""
    with safe_open(str(real), framework="numpy") as f:
        header = json.loads(f.metadata()[KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(path), metadata={KEY: change(header)})


def _nested(depth: int):
    def change(h):
        h["manifest"]["info"]["deep"] = "DEEP"
        return json.dumps(h).replace('"DEEP"', "[" * depth + "]" * depth)
    return change


def _set(dotted: str, value):
    def change(h):
        node = h["manifest"]
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
        return json.dumps(h)
    return change


CASES = {
    "nesting-100000": _nested(100_000),
    "nesting-40": _nested(40),
    "info.prune-string": _set("info.prune", "magnitude"),
    "planner-times-list": _set("planner.layers", {"layers.1": {"reason": "x", "times_ms": [1]}}),
    "planner-record-string": _set("planner.layers", {"layers.1": "fast"}),
    "sparsity-text": _set("info.prune.sparsity_achieved", "lots"),
    "sparsity-out-of-range": _set("info.prune.sparsity_achieved", 7.5),
    "method-dict": _set("info.prune.method", {"a": 1}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_manifest_is_refused_everywhere(case, real_file, tmp_path, capsys):
    import prunebench as pb

    path = tmp_path / "crafted.pbz"
    _craft(real_file, path, CASES[case])
    with pytest.raises(PrunebenchError):
        pb.load(path)
    db = tmp_path / "results.sqlite"
    for args in (["inspect", str(path)], ["bench", str(path), "--db", str(db), "--no-rss",
                                          "--min-runs", "1", "--min-time", "0.01"]):
        code = main(args)
        cap = capsys.readouterr()
        lines = cap.err.strip().splitlines()
        assert code == 2, (args, cap)
        assert "Traceback" not in cap.err
        assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), cap.err
        assert "crafted.pbz" in lines[0], lines[0]
    assert not db.exists()


def test_the_real_file_loads_and_benches(real_file, tmp_path, capsys):
    """The same file uncrafted passes every command (so the refusals above are the crafts)."""
    import prunebench as pb

    pb.load(real_file)
    assert main(["inspect", str(real_file)]) == 0
    db = tmp_path / "results.sqlite"
    assert main(["bench", str(real_file), "--db", str(db), "--no-rss", "--min-runs", "1",
                 "--min-time", "0.01"]) == 0, capsys.readouterr().err
    assert main(["results", str(db)]) == 0
