"""SQLite results store: one row per measured configuration, each written in its own
transaction, with the spec, raw samples, derived statistics and the machine fingerprint."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from ..errors import BadInputError, StoreError

APP_ID = "prunebench"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS machines (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_hash TEXT,
    created TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason TEXT,
    model TEXT NOT NULL,
    method TEXT,
    sparsity REAL,
    format TEXT,
    engine TEXT,
    batch INTEGER,
    threads INTEGER,
    seed INTEGER,
    machine_id TEXT NOT NULL REFERENCES machines(id),
    code_version TEXT,
    spec TEXT NOT NULL,
    samples TEXT,
    p50_ms REAL, p90_ms REAL, p99_ms REAL, mean_ms REAL, iqr_ms REAL,
    throughput REAL,
    param_bytes INTEGER, file_bytes INTEGER, peak_rss_bytes INTEGER,
    accuracy REAL,
    extra TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS results_job ON results(job_hash, machine_id)
    WHERE job_hash IS NOT NULL;
"""

COLUMNS = ("job_hash", "kind", "status", "reason", "model", "method", "sparsity", "format",
           "engine", "batch", "threads", "seed", "code_version", "p50_ms", "p90_ms", "p99_ms",
           "mean_ms", "iqr_ms", "throughput", "param_bytes", "file_bytes", "peak_rss_bytes",
           "accuracy")
JSON_COLUMNS = ("spec", "samples", "extra")


class Store:
    """A prunebench results database.

    Opening checks the file is a prunebench database (or empty / new) *before* anything is
    written, so a wrong path never gets a half-made schema.

    Examples
    --------
    >>> with Store(":memory:") as s:                          # doctest: +SKIP
    ...     s.add({"kind": "bench", "status": "ok", "model": "m", "spec": {}}, fp)
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            p = Path(self.path)
            if p.exists() and p.is_dir():
                raise BadInputError(f"database: {self.path!r} is a directory, expected a file")
            if not p.parent.exists():
                try:
                    p.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise BadInputError(f"database: cannot create directory "
                                        f"{str(p.parent)!r}: {e.strerror}") from None
            if p.exists() and p.stat().st_size > 0:
                _check_header(p)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._init_schema()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"database: {self.path!r} cannot be used: {e}") from None

    def _init_schema(self) -> None:
        tables = {r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"database: {self.path!r} was written by another program "
                             f"(tables: {', '.join(sorted(tables))}); choose another path")
        if "meta" in tables:
            meta = dict(self.conn.execute("SELECT key, value FROM meta"))
            if meta.get("app") != APP_ID:
                raise StoreError(f"database: {self.path!r} is not a prunebench database")
            if int(meta.get("schema_version", 0)) > SCHEMA_VERSION:
                raise StoreError(f"database: {self.path!r} has schema version "
                                 f"{meta['schema_version']}, newer than this prunebench "
                                 f"({SCHEMA_VERSION}); upgrade prunebench")
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in SCHEMA.strip().split(";"):
                if stmt.strip():
                    self.conn.execute(stmt)
            self.conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                  [("app", APP_ID), ("schema_version", str(SCHEMA_VERSION))])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # -- writing -------------------------------------------------------------------------
    def add(self, row: dict, fingerprint: dict) -> int | None:
        """Insert one result and its machine in one transaction. Returns the row id, or None
        when a row with the same ``job_hash`` on the same machine already exists."""
        unknown = set(row) - set(COLUMNS) - set(JSON_COLUMNS)
        if unknown:
            raise ValueError(f"unknown result fields: {sorted(unknown)}")
        values = {c: row.get(c) for c in COLUMNS}
        for c in JSON_COLUMNS:
            values[c] = None if row.get(c) is None else json.dumps(row[c], sort_keys=True)
        if values["spec"] is None:
            raise ValueError("a result needs a spec")
        values["machine_id"] = fingerprint["id"]
        values["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        cols = list(values)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("INSERT OR IGNORE INTO machines VALUES (?, ?)",
                              (fingerprint["id"], json.dumps(fingerprint, sort_keys=True)))
            cur = self.conn.execute(
                f"INSERT OR IGNORE INTO results ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})", [values[c] for c in cols])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return cur.lastrowid if cur.rowcount else None

    # -- reading -------------------------------------------------------------------------
    def rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        cur = self.conn.execute(f"SELECT * FROM results {where} ORDER BY id", params)
        names = [d[0] for d in cur.description]
        out = []
        for r in cur:
            d = dict(zip(names, r))
            for c in JSON_COLUMNS:
                if d[c] is not None:
                    d[c] = json.loads(d[c])
            out.append(d)
        return out

    def machines(self) -> dict[str, dict]:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT * FROM machines")}

    def has_job(self, job_hash: str, machine_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM results WHERE job_hash=? AND machine_id=?",
                                 (job_hash, machine_id)).fetchone() is not None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_header(p: Path) -> None:
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise BadInputError(f"database: cannot read {str(p)!r}: {e.strerror}") from None
    if head != b"SQLite format 3\x00":
        raise StoreError(f"database: {str(p)!r} is not an SQLite database; choose another path")


def check_writable(path: str | Path) -> None:
    """Fail early (before any measuring) when ``path`` cannot hold a database."""
    p = Path(path)
    target = p if p.exists() else p.parent
    while not target.exists():
        target = target.parent
    import os

    if not os.access(target, os.W_OK):
        raise BadInputError(f"database: {str(p)!r} is not writable")


def export_rows(rows: list[dict], path: str | Path, kind: str) -> None:
    """Write rows to CSV or Parquet (``kind``), atomically."""
    import pandas as pd

    flat = []
    for r in rows:
        d = dict(r)
        for c in JSON_COLUMNS:
            d[c] = None if d[c] is None else json.dumps(d[c], sort_keys=True)
        flat.append(d)
    df = pd.DataFrame(flat)
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        if kind == "csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        tmp.replace(p)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"--{kind}: cannot write {str(p)!r}: {e.strerror}") from None
