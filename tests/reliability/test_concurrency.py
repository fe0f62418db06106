"""Two `prunebench study` processes on the same output folder at once: each either finishes
(the two cooperate through the database: every job is stored once) or refuses with one clear
line and exit status 2; the database is never corrupted and ends with the full job set."""
from __future__ import annotations

import pytest

from .helpers import check_db, cli


@pytest.mark.slow
def test_two_studies_same_out_dir(tiny_spec, tiny_reference, tmp_path):
    out = tmp_path / "out"
    a = cli("study", str(tiny_spec), "--out", str(out), "--json")
    b = cli("study", str(tiny_spec), "--out", str(out), "--json")
    results = [p.communicate(timeout=180) + (p.returncode,) for p in (a, b)]
    for stdout, stderr, rc in results:
        assert "Traceback" not in stderr, stderr
        if rc == 2:   # refused: one line naming the folder
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), stderr
            assert str(out) in lines[0]
        else:
            assert rc == 0, stderr
    assert any(rc == 0 for *_, rc in results)
    table = check_db(out / "results.sqlite")
    assert table == tiny_reference       # every job once, same outcomes as a lone run
    assert (out / "report.html").exists()
    assert not list(out.glob(".*.tmp")) and not list(out.glob("models/.*.tmp"))



def test_study_refuses_a_folder_in_use(tiny_spec, tiny_reference_db, tmp_path, capsys):
    """While another study holds OUT/.lock (flock, dropped by the kernel when its holder dies),
    `prunebench study` on that folder refuses with one line naming it, exit 2, and leaves the
    database byte-identical and the folder's scratch files alone."""
    import fcntl
    import shutil

    from prunebench.cli import main

    out = tmp_path / "out"
    out.mkdir()
    db = out / "results.sqlite"
    shutil.copy(tiny_reference_db, db)
    (out / ".work").mkdir()
    (out / ".work" / "theirs.pbm").write_bytes(b"in use")
    before = db.read_bytes()
    with open(out / ".lock", "a+") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write("424242")
        holder.flush()
        code = main(["study", str(tiny_spec), "--out", str(out), "--json"])
        cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, cap
    assert len(lines) == 1 and "in use by another prunebench study (pid 424242)" in lines[0]
    assert str(out) in lines[0]
    assert db.read_bytes() == before
    assert (out / ".work" / "theirs.pbm").exists()
    # the holder gone (lock released), the same command runs: nothing left to do
    assert main(["study", str(tiny_spec), "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    assert db.read_bytes() != b"" and check_db(db)
