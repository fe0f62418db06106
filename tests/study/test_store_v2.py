"""Schema 2: a schema-1 database is migrated in place (rows kept); skip records."""
import sqlite3

from prunebench.measure import fingerprint
from prunebench.study import store as S
from prunebench.study.store import Store, peek


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
    import pytest

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
