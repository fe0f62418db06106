"""``prunebench merge OUT.sqlite IN1.sqlite IN2.sqlite ...``: combine results databases made on
machines that were never connected (each ran ``prunebench study`` on its own) into a new one.

* Result rows are deduplicated by (job hash, machine): the same job measured on two machines
  is two rows, the same job from the same machine found in two inputs is one (an ok row wins
  over a failed one, otherwise the first input's). Rows without a job hash (``bench``,
  ``demo``) are deduplicated when they are the same measurement (same machine, time, spec and
  samples).
* Skip records are deduplicated the same way; machines by their fingerprint id.
* The inputs are only read (a schema-1 database is read as it is, never migrated). Every input
  is checked before anything is written, and the result is written to a temporary file in
  OUT's folder and renamed onto OUT: a failure leaves nothing behind.
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import BadInputError, StoreError
from .rows import JobStatus
from .store import (APP_ID, COLUMNS, JSON_COLUMNS, SCHEMA_VERSION, SKIP_COLUMNS, Store,
                    check_pages, decode_row, readonly_uri, schema_version)

RESULT_COLUMNS = ("created", "machine_id") + COLUMNS + JSON_COLUMNS


def _open_input(path: str) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to a prunebench database and its schema version."""
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"merge: input {path!r} does not exist")
    if p.is_dir():
        raise BadInputError(f"merge: input {path!r} is a directory, expected a results "
                            "database")
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise BadInputError(f"merge: cannot read input {path!r}: {e.strerror}") from None
    if head != b"SQLite format 3\x00":
        raise BadInputError(f"merge: input {path!r} is not a prunebench results database "
                            "(not an SQLite file)")
    try:
        conn = sqlite3.connect(readonly_uri(p), uri=True, timeout=30)
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        meta = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        check_pages(conn, path)
    except sqlite3.DatabaseError as e:
        raise BadInputError(f"merge: input {path!r} cannot be read: {e}") from None
    except StoreError as e:
        conn.close()
        raise BadInputError(f"merge: input {e}") from None
    if meta.get("app") != APP_ID or not {"machines", "results"} <= tables:
        conn.close()
        raise BadInputError(f"merge: input {path!r} is not a prunebench results database "
                            f"(tables: {', '.join(sorted(tables)) or 'none'})")
    try:
        version = schema_version(meta, path)
    except StoreError as e:
        conn.close()
        raise BadInputError(f"merge: input {e}") from None
    if version > SCHEMA_VERSION:
        conn.close()
        raise BadInputError(f"merge: input {path!r} has schema version {version}, newer than "
                            f"this prunebench ({SCHEMA_VERSION}); upgrade prunebench")
    return conn, version


def _check_output(out: str, inputs: list[str]) -> Path:
    p = Path(out)
    if p.exists():
        if p.is_dir():
            raise BadInputError(f"merge: OUT {out!r} is a directory, expected a new database "
                                "file")
        for i in inputs:
            if Path(i).exists() and os.path.samefile(p, i):
                raise BadInputError(f"merge: OUT {out!r} is also an input; write the merge to "
                                    "a new file")
        raise BadInputError(f"merge: OUT {out!r} exists; merge writes a new database (list "
                            "it as an input and choose a new OUT to add to it)")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BadInputError(f"merge: OUT {out!r} cannot be created: {str(parent)!r} is a "
                            "file, not a folder")
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"merge: OUT {out!r} is not writable")
    return p


def merge_databases(out: str | os.PathLike[str],
                    inputs: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """Write the union of ``inputs`` to the new database ``out``. Returns the summary:
    out, results, skipped, machines, and per input its path, rows read and rows added."""
    paths = [str(i) for i in inputs]
    if not paths:
        raise BadInputError("merge: no input database given; usage: prunebench merge "
                            "OUT.sqlite IN1.sqlite [IN2.sqlite ...]")
    conns: list[tuple[sqlite3.Connection, int]] = []
    try:
        for i in paths:  # every input is checked before anything is written
            conns.append(_open_input(i))
        outp = _check_output(str(out), paths)
        outp.parent.mkdir(parents=True, exist_ok=True)
        tmp = outp.with_name(f".{outp.name}.merge-{os.getpid()}.tmp")
        try:
            summary = _merge_into(tmp, paths, conns)
            os.replace(tmp, outp)
        except BaseException:
            for suffix in ("", "-journal"):
                try:
                    os.unlink(f"{tmp}{suffix}")
                except OSError:
                    pass
            raise
    except OSError as e:
        raise BadInputError(f"merge: cannot write {str(out)!r}: {e.strerror or e}") from None
    finally:
        for c, _ in conns:
            c.close()
    summary["out"] = str(outp)
    return summary


def _merge_into(tmp: Path, inputs: list[str],
                conns: list[tuple[sqlite3.Connection, int]]) -> dict[str, Any]:
    per_input = []
    with Store(tmp) as store:
        db = store.conn
        db.execute("BEGIN IMMEDIATE")
        try:
            path = None
            for path, (src, version) in zip(inputs, conns):
                per_input.append(_copy(db, path, src, version))
            db.execute("COMMIT")
        except sqlite3.DatabaseError as e:  # reading the input or writing the merge
            store.rollback()
            raise StoreError(f"merge: copying input {path!r} failed (a damaged input, or "
                             f"{str(tmp)!r} cannot be written): {e}") from None
        except BaseException:
            store.rollback()
            raise
        counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("results", "skipped", "machines")}
    return {"results": counts["results"], "skipped": counts["skipped"],
            "machines": counts["machines"], "inputs": per_input}


def _copy(db: sqlite3.Connection, path: str, src: sqlite3.Connection,
          version: int) -> dict[str, Any]:
    for mid, fp in src.execute("SELECT id, fingerprint FROM machines"):
        db.execute("INSERT OR IGNORE INTO machines VALUES (?, ?)", (mid, fp))
    have = {r[1] for r in src.execute("PRAGMA table_info(results)")}
    cols = [c for c in RESULT_COLUMNS if c in have]
    read = added = replaced = 0
    for values in src.execute(f"SELECT {', '.join(cols)} FROM results ORDER BY id"):
        read += 1
        row = dict(zip(cols, values))
        try:  # a damaged row is the input's fault, never copied into the merge
            decode_row(dict(row), path)
        except StoreError as e:
            raise BadInputError(f"merge: input {e}") from None
        if row["job_hash"] is None:
            same = db.execute(
                "SELECT 1 FROM results WHERE job_hash IS NULL AND machine_id=? AND created=? "
                "AND kind=? AND spec=? AND samples IS ?",
                (row["machine_id"], row["created"], row["kind"], row["spec"], row["samples"])
            ).fetchone()
            if same:
                continue
        else:
            earlier = db.execute("SELECT id, status FROM results WHERE job_hash=? AND "
                                 "machine_id=?", (row["job_hash"], row["machine_id"])).fetchone()
            if earlier is not None:
                if earlier[1] == JobStatus.FAILED and row["status"] == JobStatus.OK:
                    db.execute("DELETE FROM results WHERE id=?", (earlier[0],))
                    replaced += 1
                else:
                    continue
        db.execute(f"INSERT INTO results ({', '.join(cols)}) VALUES "
                   f"({', '.join('?' for _ in cols)})", [row[c] for c in cols])
        added += 1
    skipped = 0
    if version >= 2:
        scols = ("job_hash", "machine_id", "created") + SKIP_COLUMNS[1:]
        for values in src.execute(f"SELECT {', '.join(scols)} FROM skipped"):
            skipped += db.execute(f"INSERT OR IGNORE INTO skipped ({', '.join(scols)}) VALUES "
                                  f"({', '.join('?' for _ in scols)})", values).rowcount
    return {"path": path, "results_read": read, "results_added": added - replaced,
            "results_replaced": replaced, "skipped_added": skipped}
