"""SQLite results store: one row per measured configuration, each written in its own
transaction, with the spec, raw samples, derived statistics and the machine fingerprint."""
from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BadInputError, StoreError

from .schema import (APP_ID, COLUMNS, JSON_COLUMNS, MIGRATIONS, NUMERIC_COLUMNS, SCHEMA,
                     SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_VERSION, SKIP_COLUMNS,
                     TABLE_COLUMNS)

__all__ = ["APP_ID", "COLUMNS", "JSON_COLUMNS", "SCHEMA_VERSION", "SKIP_COLUMNS", "Store",
           "check_database", "check_pages", "check_writable", "decode_row", "export_rows",
           "peek", "readonly_uri", "schema_version"]


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
            _make_folder(p)
            if p.exists() and p.stat().st_size > 0:
                _check_header(p)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._init_schema()
            check_pages(self.conn, self.path)
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
            version = schema_version(meta, self.path)
            if version > SCHEMA_VERSION:
                raise StoreError(f"database: {self.path!r} has schema version "
                                 f"{meta['schema_version']}, newer than this prunebench "
                                 f"({SCHEMA_VERSION}); upgrade prunebench")
            if version < SCHEMA_VERSION:
                self._migrate(version)
            return
        with self.transaction(writing_rows=False) as conn:
            for stmt in (SCHEMA + SCHEMA_V2 + SCHEMA_V3 + SCHEMA_V4).strip().split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.executemany("INSERT INTO meta VALUES (?, ?)",
                             [("app", APP_ID), ("schema_version", str(SCHEMA_VERSION))])

    def rollback(self) -> None:
        """Undo the open transaction, if any. A Ctrl-C raised right after COMMIT returned finds
        no transaction: rolling back then would replace the KeyboardInterrupt with an
        OperationalError (and a caller would take the stored row for a failed one)."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self, *, writing_rows: bool = True) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` around the block; anything raised rolls it back
        and propagates. With ``writing_rows`` (every write but the schema's, whose errors
        :meth:`__init__` reports), a failure in SQLite itself (disk full, I/O error, read-only
        file) becomes StoreError (one line, exit 2); SQLite has already undone the
        transaction, so every earlier row is intact."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if not writing_rows:
                self.rollback()
                raise
            try:
                self.rollback()
            except sqlite3.DatabaseError:
                pass
            raise StoreError(f"database: cannot write {self.path!r}: {e}") from None
        except BaseException:
            self.rollback()
            raise

    def _migrate(self, version: int) -> None:
        """Bring an older database to the current schema in one transaction (its rows are
        kept; the new columns are NULL in them)."""
        with self.transaction(writing_rows=False) as conn:
            now = dict(conn.execute("SELECT key, value FROM meta"))
            have = int(now.get("schema_version", 0))  # another process may have migrated it
            for target in range(max(have, 1) + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[target].strip().split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
            if have < SCHEMA_VERSION:
                conn.execute("UPDATE meta SET value=? WHERE key='schema_version'",
                             (str(SCHEMA_VERSION),))

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
        values["profile"] = values["profile"] or fingerprint.get("profile", "default")
        values["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        cols = list(values)
        with self.transaction() as conn:
            _add_machine(conn, fingerprint)
            cur = conn.execute(
                f"INSERT OR IGNORE INTO results ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})", [values[c] for c in cols])
        return cur.lastrowid if cur.rowcount else None

    # -- reading -------------------------------------------------------------------------
    def rows(self, **equal: Any) -> list[dict]:
        """Result rows, in the order they were stored, whose columns equal the keywords
        (``rows(kind="prune", status="ok")``; none: every row), as dicts with the JSON columns
        decoded; StoreError names the first damaged row (a JSON column that does not parse,
        text in a numeric column)."""
        return self._select("results", "id", equal)

    def rows_for_job(self, job_hash: str, machine_id: str) -> list[dict]:
        """The result row of one job on one machine (a list: none, or one)."""
        return self.rows(job_hash=job_hash, machine_id=machine_id)

    def add_skipped(self, rows: list[dict], fingerprint: dict) -> int:
        """Record skipped jobs (keys of :data:`SKIP_COLUMNS`) in one transaction, replacing an
        earlier record of the same job on this machine. Returns how many were written."""
        if not rows:
            return 0
        created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        values = []
        for r in rows:
            unknown = set(r) - set(SKIP_COLUMNS)
            if unknown:
                raise ValueError(f"unknown skipped fields: {sorted(unknown)}")
            v = {c: r.get(c) for c in SKIP_COLUMNS}
            v["spec"] = json.dumps(v["spec"] or {}, sort_keys=True)
            values.append([v[c] for c in SKIP_COLUMNS] + [fingerprint["id"], created])
        cols = list(SKIP_COLUMNS) + ["machine_id", "created"]
        with self.transaction() as conn:
            _add_machine(conn, fingerprint)
            conn.executemany(
                f"INSERT OR REPLACE INTO skipped ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})", values)
        return len(values)

    def skipped_rows(self, **equal: Any) -> list[dict]:
        """Skip records whose columns equal the keywords (``skipped_rows(stage="static")``),
        as :meth:`rows` reads results."""
        return self._select("skipped", "rowid", equal)

    def skipped_for_job(self, job_hash: str, machine_id: str) -> list[dict]:
        """The skip record of one job on one machine (a list: none, or one)."""
        return self.skipped_rows(job_hash=job_hash, machine_id=machine_id)

    def _select(self, table: str, order: str, equal: dict[str, Any]) -> list[dict]:
        known = TABLE_COLUMNS[table]
        unknown = sorted(set(equal) - set(known))
        if unknown:
            raise ValueError(f"unknown {table} columns: {unknown}; known: {', '.join(known)}")
        where = " AND ".join(f"{c} IS ?" for c in equal)
        try:
            cur = self.conn.execute(f"SELECT * FROM {table} {'WHERE ' + where if where else ''} "
                                    f"ORDER BY {order}", tuple(equal.values()))
            names = [d[0] for d in cur.description]
            return [decode_row(dict(zip(names, r)), self.path, table) for r in cur]
        except sqlite3.DatabaseError as e:
            raise StoreError(f"database: {self.path!r} cannot be read (damaged?): {e}") from None

    def check_rows(self) -> None:
        """Read every row once: StoreError (one line) for the first damaged one, so a study
        refuses a damaged database before it runs anything rather than after."""
        self.rows()
        self.skipped_rows()

    def job_status(self, machine_id: str) -> dict[str, str]:
        """{job_hash: 'ok' | 'failed' | 'skipped-static' | 'skipped-runtime'} of this machine's
        jobs (a stored result wins over a skip record)."""
        out = {h: "skipped-" + stage for h, stage in self.conn.execute(
            "SELECT job_hash, stage FROM skipped WHERE machine_id=?", (machine_id,))}
        out.update(self.conn.execute(
            "SELECT job_hash, status FROM results WHERE machine_id=? AND job_hash IS NOT NULL",
            (machine_id,)))
        return out

    def forget(self, job_hashes: list[str], machine_id: str, *, results: bool = False,
               skipped: bool = True) -> int:
        """Delete this machine's skip records (and, with ``results``, result rows) of
        ``job_hashes`` in one transaction, e.g. to retry failed jobs. Returns rows deleted."""
        n = 0
        tables = [t for t, on in (("skipped", skipped), ("results", results)) if on]
        with self.transaction() as conn:
            for h in job_hashes:
                for table in tables:
                    n += conn.execute(f"DELETE FROM {table} WHERE job_hash=? AND machine_id=?",
                                      (h, machine_id)).rowcount
        return n

    def environment_failures(self, machine_id: str, marker: str) -> set[str]:
        """Job hashes of this machine's failed rows whose reason holds ``marker`` (a failure
        of the machine, e.g. a full disk: a resume runs those jobs again)."""
        return {h for (h,) in self.conn.execute(
            "SELECT job_hash FROM results WHERE machine_id=? AND status='failed' "
            "AND job_hash IS NOT NULL AND instr(reason, ?) > 0", (machine_id, marker))}

    def kind_timings(self) -> dict[tuple[str, str], float]:
        """Median seconds per job of each (kind, model), from ``extra.elapsed_s`` of stored
        rows: what a study's time estimate learns from earlier runs."""
        return _median_timings(self.conn)

    def machines(self) -> dict[str, dict]:
        """{machine id: fingerprint} of every machine with a stored row."""
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT * FROM machines")}

    def has_job(self, job_hash: str, machine_id: str) -> bool:
        """Whether a result of this job on this machine is stored."""
        return self.conn.execute("SELECT 1 FROM results WHERE job_hash=? AND machine_id=?",
                                 (job_hash, machine_id)).fetchone() is not None

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _add_machine(conn: sqlite3.Connection, fingerprint: dict) -> None:
    """Store a machine's fingerprint (once) inside the caller's transaction."""
    conn.execute("INSERT OR IGNORE INTO machines VALUES (?, ?)",
                 (fingerprint["id"], json.dumps(fingerprint, sort_keys=True)))


def schema_version(meta: dict, path: str) -> int:
    """The ``schema_version`` of a database's meta table, or StoreError if it is not an
    integer (a damaged or hand-edited database)."""
    value = meta.get("schema_version", 0) or 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StoreError(f"database: {str(path)!r} has schema_version {value!r} in its meta "
                         f"table, expected an integer (at most {SCHEMA_VERSION}); the database "
                         "is damaged") from None


def check_pages(conn: sqlite3.Connection, path: str) -> None:
    """SQLite's ``quick_check`` of an open database: StoreError naming its first finding
    when pages are damaged (reading them would fail later, after work was done)."""
    found = [r[0] for r in conn.execute("PRAGMA quick_check(1)")]
    if found != ["ok"]:
        raise StoreError(f"database: {str(path)!r} is damaged (SQLite quick_check: "
                         f"{' '.join(' '.join(map(str, found)).split())[:200]}); restore it from a copy or "
                         "choose another path")


def decode_row(d: dict, path: str, table: str = "results") -> dict:
    """Row ``d`` of ``table`` with its JSON columns decoded, after checking that they parse
    and that numeric columns hold numbers; StoreError naming the row and column if not."""
    where = f"row {d.get('id', d.get('job_hash'))} of table {table}"
    for c in (JSON_COLUMNS if table == "results" else ("spec",)):
        if d.get(c) is not None:
            try:
                d[c] = json.loads(d[c])
            except (TypeError, ValueError) as e:
                raise StoreError(f"database: {str(path)!r} is damaged: {where}: column {c} is "
                                 f"not valid JSON ({e})") from None
    for c in NUMERIC_COLUMNS:
        v = d.get(c)
        if v is not None and (isinstance(v, (str, bytes)) or not isinstance(v, (int, float))):
            raise StoreError(f"database: {str(path)!r} is damaged: {where}: column {c} holds "
                             f"{v!r:.60}, expected a number")
    return d


def readonly_uri(path: str | Path) -> str:
    """The SQLite URI that opens ``path`` read-only. The path is percent-quoted: unquoted, a
    ``?`` or ``#`` in it ends the file name, and another file (``in`` for ``in?x.sqlite``) is
    opened, or created."""
    from urllib.parse import quote

    return f"file:{quote(str(Path(path).resolve()))}?mode=ro"


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

    if target != p and not target.is_dir():  # a path under a regular file
        raise BadInputError(f"database: {str(p)!r} cannot be created: {str(target)!r} is a "
                            "file, not a folder")
    if not os.access(target, os.W_OK):
        raise BadInputError(f"database: {str(p)!r} is not writable")


def check_database(path: str | Path) -> None:
    """Refuse, before any measuring, a path that :class:`Store` would refuse, without creating
    the database: a directory, a place that cannot be written, a file that is not a
    prunebench database. Missing folders are created (as Store creates them), which is how a
    folder that cannot exist (``/proc/x``) is found even by root."""
    p = Path(path)
    if p.is_dir():
        raise BadInputError(f"database: {str(p)!r} is a directory, expected a file")
    check_writable(p)
    _make_folder(p)
    peek(p, "")


def _make_folder(p: Path) -> None:
    """Create the folder of database ``p`` if it is missing."""
    if not p.parent.exists():
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInputError(f"database: cannot create directory "
                                f"{str(p.parent)!r}: {e.strerror}") from None


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
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. its folder is a regular file: there is nothing to remove
            pass
        raise BadInputError(f"--{kind}: cannot write {str(p)!r}: {e.strerror or e}") from None


def peek(path: str | Path, machine_id: str, retried: str | None = None
         ) -> tuple[dict[str, str], dict[tuple[str, str], float]]:
    """Job statuses and per-(kind, model) timings of a database, read without writing anything
    (no schema created or migrated): what ``study --dry-run`` needs. A missing file gives two
    empty dicts; a file that is not a prunebench database raises StoreError. Failed rows
    whose reason holds ``retried`` (failures a resume runs again) get status 'failed-retried'."""
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        return {}, {}
    if p.is_dir():
        raise BadInputError(f"database: {str(p)!r} is a directory, expected a file")
    _check_header(p)
    try:
        conn = sqlite3.connect(readonly_uri(p), uri=True, timeout=30)
    except sqlite3.DatabaseError as e:
        raise StoreError(f"database: {str(p)!r} cannot be read: {e}") from None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables or dict(conn.execute("SELECT key, value FROM meta")).get(
                "app") != APP_ID:
            raise StoreError(f"database: {str(p)!r} was written by another program; "
                             "choose another path")
        schema_version(dict(conn.execute("SELECT key, value FROM meta")), str(p))
        check_pages(conn, str(p))
        status: dict[str, str] = {}
        if "skipped" in tables:
            status.update((h, "skipped-" + s) for h, s in conn.execute(
                "SELECT job_hash, stage FROM skipped WHERE machine_id=?", (machine_id,)))
        status.update(conn.execute("SELECT job_hash, status FROM results WHERE machine_id=? "
                                   "AND job_hash IS NOT NULL", (machine_id,)))
        if retried:
            status.update((h, "failed-retried") for (h,) in conn.execute(
                "SELECT job_hash FROM results WHERE machine_id=? AND status='failed' AND "
                "job_hash IS NOT NULL AND instr(reason, ?) > 0", (machine_id, retried)))
        return status, _median_timings(conn)
    except sqlite3.DatabaseError as e:
        raise StoreError(f"database: {str(p)!r} cannot be read: {e}") from None
    finally:
        conn.close()


def _median_timings(conn: sqlite3.Connection) -> dict[tuple[str, str], float]:
    acc: dict[tuple[str, str], list[float]] = {}
    for kind, model, extra in conn.execute(
            "SELECT kind, model, extra FROM results WHERE extra IS NOT NULL"):
        try:
            e = json.loads(extra).get("elapsed_s")
        except (ValueError, AttributeError):
            continue
        if isinstance(e, (int, float)):
            acc.setdefault((kind, model), []).append(float(e))
    return {k: sorted(v)[len(v) // 2] for k, v in acc.items()}
