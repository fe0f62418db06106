"""Unwritable output places and a full disk. Writing the report, an export or a database to a
place that cannot be written (/proc/x/y, a path whose parent is a regular file) fails with one
line and exit 2 and leaves the earlier database byte-identical. A study whose database file
cannot grow (RLIMIT_FSIZE: the kernel's 'file too large', as on a full disk) stops with one
line and exit 2, and the database keeps every earlier row, passes integrity_check and holds
no partial or spurious row; with the space back, the same command finishes the study."""
from __future__ import annotations

import hashlib
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest

from .helpers import check_db, result_hashes

from prunebench.cli import main


def _sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def earlier_db(tiny_reference_db, tmp_path):
    db = tmp_path / "runs" / "results.sqlite"
    db.parent.mkdir()
    shutil.copy(tiny_reference_db, db)
    (tmp_path / "regular.txt").write_text("x")
    return db


@pytest.mark.parametrize("args", [
    ["report", "{db}", "-o", "/proc/x/y.html"],
    ["report", "{db}", "-o", "{tmp}/regular.txt/report.html"],
    ["results", "{db}", "--csv", "/proc/x/y.csv"],
    ["results", "{db}", "--csv", "{tmp}/regular.txt/rows.csv"],
    ["results", "{db}", "--parquet", "/proc/x/y.parquet"],
    ["bench", "digits-lenet300", "--db", "/proc/x/results.sqlite"],
    ["bench", "digits-lenet300", "--db", "{tmp}/regular.txt/results.sqlite"],
    ["study", "smoke", "--out", "/proc/x"],
    ["study", "smoke", "--out", "{tmp}/regular.txt/runs"],
], ids=lambda a: " ".join(a[:1] + a[2:]))
def test_unwritable_output_leaves_database_intact(args, earlier_db, tmp_path, capsys):
    before = _sha(earlier_db)
    files_before = sorted(p.name for p in tmp_path.rglob("*"))
    code = main([a.format(db=earlier_db, tmp=tmp_path) for a in args])
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, cap
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), cap.err
    assert "Traceback" not in cap.err
    assert _sha(earlier_db) == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == files_before


def _limit_file_size(n: int):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return pre


@pytest.mark.slow
def test_database_cannot_grow_disk_full(tiny_spec, tiny_reference_db, tiny_reference, tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    db = out / "results.sqlite"
    shutil.copy(tiny_reference_db, db)
    # the pruned-model cache of the earlier run: only database writes are left to fail
    shutil.copytree(tiny_reference_db.parent / "models", out / "models")
    c = sqlite3.connect(db)                  # an earlier, partial run: latency rows missing
    c.execute("DELETE FROM results WHERE kind='latency'")
    c.commit()
    c.execute("VACUUM")                      # no free pages: the next rows must grow the file
    c.close()
    kept = result_hashes(db)
    size = db.stat().st_size
    proc = subprocess.run([sys.executable, "-m", "prunebench", "study", str(tiny_spec), "--out",
                           str(out), "--json"], capture_output=True, text=True, timeout=120,
                          preexec_fn=_limit_file_size(size))
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot write" in lines[0] and "results.sqlite" in lines[0], lines[0]
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), proc.stderr
    table = check_db(db)
    assert kept <= result_hashes(db)                     # nothing lost
    assert all(tiny_reference[h] == s for h, s in table.items())   # nothing spurious
    # space back: the same command finishes
    proc = subprocess.run([sys.executable, "-m", "prunebench", "study", str(tiny_spec), "--out",
                           str(out), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert check_db(db) == tiny_reference
