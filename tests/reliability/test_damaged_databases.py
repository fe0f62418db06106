"""A damaged results database is one line and exit 2 in ``results``, ``report``, ``study`` and
``merge``, never a traceback, and is left byte-identical with nothing else written (issue 18,
item 4). Damage, each applied to a copy of the tiny study's database: pages overwritten with
random bytes, ``schema_version`` set to '2.1-beta', invalid JSON in a row's ``extra``, text in
numeric columns."""
from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3

import pytest

from prunebench.cli import main


def _damage(db, kind: str) -> None:
    if kind == "pages":
        with open(db, "r+b") as f:  # pages 4-7 of 32: tables and indexes
            f.seek(4096 * 3)
            f.write(random.Random(0).randbytes(4096 * 4))
        return
    c = sqlite3.connect(db)
    if kind == "schema-version":
        c.execute("UPDATE meta SET value='2.1-beta' WHERE key='schema_version'")
    elif kind == "json":
        c.execute("UPDATE results SET extra='{not json' WHERE id=(SELECT MIN(id) FROM results)")
    elif kind == "text-in-number":
        c.execute("UPDATE results SET p50_ms='fast', sparsity='lots' WHERE id IN "
                  "(SELECT id FROM results WHERE kind='latency' LIMIT 2)")
    c.commit()
    c.close()


COMMANDS = {
    "results": ["results", "{db}"],
    "results-csv": ["results", "{db}", "--csv", "{tmp}/rows.csv"],
    "report": ["report", "{db}", "-o", "{tmp}/report.html"],
    "study": ["study", "{spec}", "--out", "{out}"],
    "merge": ["merge", "{tmp}/merged.sqlite", "{db}", "{ref}"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", ["pages", "schema-version", "json", "text-in-number"])
def test_damaged_database_is_one_line_exit_2(kind, command, tiny_reference_db, tiny_spec,
                                              tmp_path, capsys):
    out = tmp_path / "runs"
    out.mkdir()
    db = out / "results.sqlite"
    shutil.copy(tiny_reference_db, db)
    _damage(db, kind)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    files = sorted(p.name for p in tmp_path.rglob("*"))
    args = [a.format(db=db, tmp=tmp_path, spec=tiny_spec, out=out, ref=tiny_reference_db)
            for a in COMMANDS[command]]
    code = main(args)
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2, cap
    assert "Traceback" not in cap.err
    assert len(lines) == 1 and lines[0].startswith("prunebench: error:"), cap.err
    assert str(db) in lines[0] or "results.sqlite" in lines[0], lines[0]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    # nothing written beside it (the study's lock file aside, which it takes before reading)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name != ".lock") == files
