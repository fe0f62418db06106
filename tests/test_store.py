import sqlite3

import pytest

from prunebench.errors import BadInputError, StoreError
from prunebench.measure import fingerprint
from prunebench.study.store import Store, export_rows


def _row(**kw):
    row = {"kind": "bench", "status": "ok", "model": "m", "method": "dense", "sparsity": 0.0,
           "format": "dense", "engine": "torch-dense", "batch": 1, "threads": 1, "seed": 0,
           "spec": {"model": "m", "batch": 1}, "samples": [0.001, 0.002, 0.0015],
           "p50_ms": 1.5, "accuracy": 0.9, "extra": {"note": "x"}}
    row.update(kw)
    return row


def test_round_trip(tmp_path):
    fp = fingerprint()
    path = tmp_path / "r.sqlite"
    with Store(path) as s:
        rid = s.add(_row(), fp)
        s.add(_row(model="n", accuracy=None), fp)
    with Store(path) as s:
        rows = s.rows()
        assert [r["model"] for r in rows] == ["m", "n"]
        assert rows[0]["id"] == rid
        assert rows[0]["samples"] == [0.001, 0.002, 0.0015]
        assert rows[0]["spec"] == {"model": "m", "batch": 1}
        assert rows[0]["accuracy"] == pytest.approx(0.9) and rows[1]["accuracy"] is None
        assert rows[0]["machine_id"] == fp["id"]
        assert s.machines()[fp["id"]]["cpu"] == fp["cpu"]


def test_job_hash_is_unique_per_machine(tmp_path):
    fp = fingerprint()
    with Store(tmp_path / "r.sqlite") as s:
        assert s.add(_row(job_hash="abc"), fp) is not None
        assert s.add(_row(job_hash="abc"), fp) is None
        other = dict(fp, id="other-machine")
        assert s.add(_row(job_hash="abc"), other) is not None
        assert len(s.rows()) == 2 and s.has_job("abc", fp["id"])


def test_foreign_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE t (x)")
    c.execute("INSERT INTO t VALUES (42)")
    c.commit()
    c.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        Store(path)
    assert path.read_bytes() == before


def test_non_sqlite_file_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store(path)
    assert path.read_text() == "hello"


def test_directory_refused(tmp_path):
    with pytest.raises(BadInputError, match="directory"):
        Store(tmp_path)


def test_export_csv_and_parquet(tmp_path):
    import pandas as pd

    fp = fingerprint()
    with Store(tmp_path / "r.sqlite") as s:
        s.add(_row(), fp)
        s.add(_row(model="n", p50_ms=2.5), fp)
        rows = s.rows()
    export_rows(rows, tmp_path / "r.csv", "csv")
    export_rows(rows, tmp_path / "r.parquet", "parquet")
    for df in (pd.read_csv(tmp_path / "r.csv"), pd.read_parquet(tmp_path / "r.parquet")):
        assert list(df["model"]) == ["m", "n"]
        assert list(df["p50_ms"]) == [1.5, 2.5]
