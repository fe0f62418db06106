"""The results store: rows round-trip, typed queries, refusals of foreign files, export,
migrations from every earlier schema (rows kept), skip records, and transactions."""
import sqlite3

import pytest

from prunebench.errors import BadInputError, StoreError
from prunebench.measure import fingerprint
from prunebench.study import store as S
from prunebench.study.store import Store, export_rows, peek


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


def test_schema1_database_is_migrated_with_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    c = sqlite3.connect(path)
    c.executescript(S.SCHEMA)
    c.executemany("INSERT INTO meta VALUES (?, ?)", [("app", "prunebench"),
                                                     ("schema_version", "1")])
    c.execute("INSERT INTO machines VALUES ('m1', '{}')")
    c.execute("INSERT INTO results (job_hash, created, kind, status, model, machine_id, spec, "
              "p50_ms) VALUES ('h1', 'now', 'bench', 'ok', 'mnist1d-mlp', 'm1', '{}', 1.5)")
    c.commit()
    c.close()
    fp = fingerprint()
    assert peek(path, "m1") == ({"h1": "ok"}, {})   # reading never migrates
    with Store(path) as s:
        (row,) = s.rows()
        assert row["p50_ms"] == 1.5 and row["value_encoding"] is None
        s.add({"job_hash": "h2", "kind": "size", "status": "ok", "model": "m",
               "value_encoding": "int8", "scope": "global", "spec": {}}, fp)
        s.add_skipped([{"job_hash": "h3", "stage": "static", "kind": "latency", "model": "m",
                        "reason": "engine x cannot run format y", "spec": {"a": 1}}], fp)
        assert s.job_status(fp["id"]) == {"h2": "ok", "h3": "skipped-static"}
        assert s.skipped_rows()[0]["spec"] == {"a": 1}
        assert s.forget(["h3"], fp["id"]) == 1 and s.skipped_rows() == []
    c = sqlite3.connect(path)
    assert dict(c.execute("SELECT key, value FROM meta"))["schema_version"] == str(S.SCHEMA_VERSION)
    c.close()


def test_schema2_database_gains_the_finetune_columns(tmp_path):
    """Schema 3: train/validation accuracy and convergence; old rows keep NULL there."""
    path = tmp_path / "v2.sqlite"
    c = sqlite3.connect(path)
    c.executescript(S.SCHEMA + S.SCHEMA_V2)
    c.executemany("INSERT INTO meta VALUES (?, ?)", [("app", "prunebench"),
                                                     ("schema_version", "2")])
    c.execute("INSERT INTO machines VALUES ('m1', '{}')")
    c.execute("INSERT INTO results (job_hash, created, kind, status, model, machine_id, spec, "
              "accuracy) VALUES ('h1', 'now', 'prune', 'ok', 'mnist1d-cnn', 'm1', '{}', 0.8)")
    c.commit()
    c.close()
    with Store(path) as s:
        s.add({"job_hash": "h2", "kind": "prune", "status": "ok", "model": "mnist1d-cnn",
               "accuracy": 0.7, "train_accuracy": 0.9, "val_accuracy": 0.75, "converged": 0,
               "spec": {}}, fingerprint())
        old, new = s.rows()
    assert (old["accuracy"], old["train_accuracy"], old["converged"]) == (0.8, None, None)
    assert (new["train_accuracy"], new["val_accuracy"], new["converged"]) == (0.9, 0.75, 0)


def test_ctrl_c_right_after_commit_stays_a_ctrl_c(tmp_path):
    """A KeyboardInterrupt raised as COMMIT returns must reach the caller as such (the row is
    stored), not turn into 'cannot rollback' that a runner would record as a failed job."""
    class Interrupting:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            out = self.conn.execute(sql, *args)
            if sql == "COMMIT":
                raise KeyboardInterrupt
            return out

        @property
        def in_transaction(self):
            return self.conn.in_transaction

    fp = fingerprint()
    with Store(tmp_path / "r.sqlite") as s:
        real = s.conn
        s.conn = Interrupting(real)
        with pytest.raises(KeyboardInterrupt):
            s.add({"job_hash": "h1", "kind": "size", "status": "ok", "model": "m", "spec": {}},
                  fp)
        s.conn = real
        assert s.job_status(fp["id"]) == {"h1": "ok"}


def test_schema3_database_gains_the_profile_column(tmp_path):
    """Schema 4: a result's run profile; rows from before ran in the default profile."""
    path = tmp_path / "v3.sqlite"
    c = sqlite3.connect(path)
    c.executescript(S.SCHEMA + S.SCHEMA_V2 + S.SCHEMA_V3)
    c.executemany("INSERT INTO meta VALUES (?, ?)", [("app", "prunebench"),
                                                     ("schema_version", "3")])
    c.execute("INSERT INTO machines VALUES ('m1', '{}')")
    c.execute("INSERT INTO results (job_hash, created, kind, status, model, machine_id, spec) "
              "VALUES ('h1', 'now', 'bench', 'ok', 'mnist1d-mlp', 'm1', '{}')")
    c.commit()
    c.close()
    fp = dict(fingerprint(), id="m2", profile="edge")
    with Store(path) as s:
        s.add({"job_hash": "h2", "kind": "bench", "status": "ok", "model": "m", "spec": {}}, fp)
        old, new = s.rows()
    assert (old["profile"], new["profile"]) == ("default", "edge")


def test_typed_queries_match_plain_sql(tmp_path):
    """rows(**equal), rows_for_job and skipped_for_job return what the equivalent SQL selects
    (read here with sqlite3 directly), in storage order; an unknown column is refused."""
    fp, other = fingerprint(), dict(fingerprint(), id="other-machine")
    path = tmp_path / "r.sqlite"
    with Store(path) as s:
        s.add(_row(job_hash="a", kind="prune"), fp)
        s.add(_row(job_hash="b", format="csr"), fp)
        s.add(_row(job_hash="a", kind="prune"), other)
        s.add(_row(job_hash="c", format="csr", status="failed", reason="x"), fp)
        s.add_skipped([{"job_hash": "d", "stage": "static", "kind": "latency", "model": "m",
                        "reason": "r1", "spec": {}},
                       {"job_hash": "e", "stage": "runtime", "kind": "size", "model": "m",
                        "reason": "r2", "spec": {}}], fp)
        conn = sqlite3.connect(path)
        ids = lambda sql, *p: [r[0] for r in conn.execute(sql, p)]  # noqa: E731
        assert [r["id"] for r in s.rows(format="csr", status="ok")] == ids(
            "SELECT id FROM results WHERE format='csr' AND status='ok' ORDER BY id")
        assert [r["id"] for r in s.rows(kind="prune")] == ids(
            "SELECT id FROM results WHERE kind='prune' ORDER BY id")
        assert len(s.rows(kind="prune")) == 2
        (row,) = s.rows_for_job("a", "other-machine")
        assert row["id"] == ids("SELECT id FROM results WHERE job_hash='a' AND "
                                "machine_id='other-machine'")[0] and row["spec"] == _row()["spec"]
        assert s.rows_for_job("d", fp["id"]) == []
        assert [r["id"] for r in s.rows(reason=None)] == ids(
            "SELECT id FROM results WHERE reason IS NULL ORDER BY id")
        assert [r["reason"] for r in s.skipped_rows(stage="static")] == ["r1"]
        assert s.skipped_for_job("e", fp["id"])[0]["reason"] == "r2"
        assert s.skipped_for_job("e", "other-machine") == []
        conn.close()
        with pytest.raises(ValueError, match="unknown results columns: \\['kinds'\\]"):
            s.rows(kinds="prune")


def test_a_failed_write_is_one_line_and_keeps_every_earlier_row(tmp_path):
    """A write SQLite refuses inside the transaction (as a full disk would; here triggers
    that abort every write) is StoreError naming the database, rolled back, and leaves the
    rows written before untouched."""
    fp = fingerprint()
    path = tmp_path / "r.sqlite"
    with Store(path) as s:
        s.add(_row(job_hash="a"), fp)
        for table in ("results", "skipped"):
            for op in ("INSERT", "DELETE"):
                s.conn.execute(f"CREATE TRIGGER no_{op}_{table} BEFORE {op} ON {table} "
                               "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    before = path.read_bytes()
    with Store(path) as s:
        for write in (lambda: s.add(_row(job_hash="b"), fp),
                      lambda: s.forget(["a"], fp["id"], results=True),
                      lambda: s.add_skipped([{"job_hash": "c", "stage": "static",
                                              "kind": "size", "reason": "r", "spec": {}}], fp)):
            with pytest.raises(StoreError, match=f"database: cannot write {str(path)!r}: "):
                write()
            assert not s.conn.in_transaction
        assert [r["job_hash"] for r in s.rows()] == ["a"]
    assert path.read_bytes() == before
