"""Untrusted model files are never unpickled. tests/runtime/test_pack_cli.py already feeds a raw
pickle to `inspect`; this adds a real ``torch.save`` zip archive (a pickle inside a zip, the
usual .pt checkpoint) carrying a payload that creates a marker file when unpickled, fed to
`inspect`, `bench FILE` (dense and pruned paths), the loader API and the study's pruned-model
cache: each refuses it with one line / a FormatError, and the payload never runs."""
from __future__ import annotations

import re

import pytest
import torch

from prunebench.cli import main
from prunebench.errors import FormatError


class Trap:
    """Unpickling this creates ``path``."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "model.pt"
    torch.save({"layers.0.weight": Trap(str(marker)), "t": torch.zeros(3)}, str(path))
    assert path.read_bytes()[:2] == b"PK"            # the zip layout of torch.save
    return path, marker


def _one_line_2(argv, capsys):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, cap
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), cap.err
    assert "Traceback" not in cap.err
    return lines[0]


@pytest.mark.parametrize("extra", [[], ["--format", "csr", "--engine", "native"]],
                         ids=["bench-dense", "bench-compiled"])
def test_bench_refuses_torch_save_file(evil, extra, capsys, tmp_path):
    path, marker = evil
    db = tmp_path / "db" / "results.sqlite"
    line = _one_line_2(["bench", path, "--db", db, "--no-rss", *extra], capsys)
    assert re.search(r"not a prunebench model file.*pickle", line), line
    assert not marker.exists()


def test_bench_refused_file_writes_no_database(evil, capsys, tmp_path):
    path, marker = evil
    db = tmp_path / "db" / "results.sqlite"
    _one_line_2(["bench", path, "--db", db, "--no-rss"], capsys)
    assert not db.exists(), "a refused file left a database behind"


def test_inspect_refuses_torch_save_file(evil, capsys):
    path, marker = evil
    line = _one_line_2(["inspect", path], capsys)
    assert re.search(r"not a prunebench model file.*pickle", line), line
    assert not marker.exists()


def test_loaders_refuse_torch_save_file(evil):
    from prunebench.formats import inspect_container, load_container
    from prunebench.runtime import load_model
    from prunebench.study import stages

    path, marker = evil
    for loader in (load_model, load_container, inspect_container):
        with pytest.raises(FormatError, match="pickle"):
            loader(path)
    # a planted file in a study's pruned-model cache is treated as damaged (re-pruned)
    cached = path.with_suffix(".pbm")
    path.rename(cached)
    assert stages.load_pruned(cached) is None
    assert not marker.exists()
