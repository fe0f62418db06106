"""Messages that named the wrong cause (issue 18, item 9): each is one line, exit 2, and now
says what is actually wrong; nothing is written."""
from __future__ import annotations

import pickle
import shutil
import struct

import pytest

from prunebench.cli import main


def _one_line(args, capsys) -> str:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, cap
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), cap.err
    return lines[0]


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_every_pickle_protocol_gets_the_pickle_hint(protocol, tmp_path, capsys):
    f = tmp_path / "m.pbz"
    f.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}, protocol=protocol))
    assert "looks like a pickle" in _one_line(["inspect", f], capsys)


def test_truncated_model_file_with_header_length_byte_0x80_is_not_called_a_pickle(tmp_path,
                                                                                 capsys):
    f = tmp_path / "m.pbz"  # a safetensors header length of 0x380 bytes, cut inside the JSON
    f.write_bytes(struct.pack("<Q", 0x380) + b'{"__metadata__": {"prunebench": "')
    line = _one_line(["inspect", f], capsys)
    assert "pickle" not in line and "not a prunebench model file" in line, line


def test_bench_missing_file_says_the_file_does_not_exist(tmp_path, capsys):
    line = _one_line(["bench", tmp_path / "missing.pbz", "--db", tmp_path / "r.sqlite"], capsys)
    assert "does not exist" in line and "missing.pbz" in line and "unknown model" not in line
    line = _one_line(["bench", "missing.pbz", "--db", tmp_path / "r.sqlite"], capsys)
    assert "model file 'missing.pbz' does not exist" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["digits-lenet300", "file"])
def test_bench_sparsity_without_method_is_refused(target, tmp_path, capsys):
    from prunebench import zoo
    from prunebench.runtime.modelfile import save_model

    if target == "file":
        target = tmp_path / "m.pbz"
        save_model(target, zoo.get_spec("digits-lenet300").build(), zoo_name="digits-lenet300", format="csr")
    db = tmp_path / "r.sqlite"
    line = _one_line(["bench", target, "--sparsity", "1.5", "--db", db], capsys)
    assert "--sparsity: got 1.5 without --method" in line
    assert not db.exists()


def test_results_csv_to_an_impossible_path_names_the_cause(tiny_reference_db, tmp_path, capsys):
    db = tmp_path / "results.sqlite"
    shutil.copy(tiny_reference_db, db)
    line = _one_line(["results", db, "--csv", "/proc/x/y.csv"], capsys)
    assert not line.endswith("None") and "/proc/x" in line, line


def test_results_on_a_0_byte_file_writes_nothing_into_it(tmp_path, capsys):
    db = tmp_path / "empty.sqlite"
    db.write_bytes(b"")
    line = _one_line(["results", db], capsys)
    assert "empty (0 bytes)" in line
    assert db.stat().st_size == 0


def test_merge_blames_a_damaged_input_not_its_temporary_file(tiny_reference_db, tmp_path,
                                                            capsys):
    bad = tmp_path / "in.sqlite"
    shutil.copy(tiny_reference_db, bad)
    with open(bad, "r+b") as f:
        f.seek(4096 * 3)
        f.write(b"\xa5" * 4096 * 4)
    line = _one_line(["merge", tmp_path / "out.sqlite", tiny_reference_db, bad], capsys)
    assert str(bad) in line and ".tmp" not in line, line
    assert not (tmp_path / "out.sqlite").exists()
