"""The results database's schema: its tables, the migrations from each earlier version, and
the columns a result row and a skip record carry (:mod:`.store` reads and writes them)."""
from __future__ import annotations

APP_ID = "prunebench"
SCHEMA_VERSION = 4

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

# Schema 2 (studies): the value encoding and pruning scope of a result get columns of their own,
# and jobs a study skips (an engine that cannot run a format, a method that does not fit a
# model) are recorded with the reason in ``skipped`` instead of being silently dropped.
SCHEMA_V2 = """
ALTER TABLE results ADD COLUMN value_encoding TEXT;
ALTER TABLE results ADD COLUMN scope TEXT;
CREATE TABLE IF NOT EXISTS skipped (
    job_hash TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    created TEXT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('static', 'runtime')),
    kind TEXT NOT NULL,
    model TEXT,
    method TEXT,
    sparsity REAL,
    format TEXT,
    engine TEXT,
    batch INTEGER,
    seed INTEGER,
    reason TEXT NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (job_hash, machine_id)
);
"""
# Schema 3 (issue 16): a fine-tuned result says how the fine-tune went: accuracy on the examples
# it trained on, on the held-out validation part of the training split, and whether the
# validation accuracy reached its plateau (1) or was still improving when the budget ran out
# (0); NULL where nothing was fine-tuned or judged.
SCHEMA_V3 = """
ALTER TABLE results ADD COLUMN train_accuracy REAL;
ALTER TABLE results ADD COLUMN val_accuracy REAL;
ALTER TABLE results ADD COLUMN converged INTEGER;
"""
# Schema 4 (issue 17): the run profile of a result (``default``, or ``edge``: one thread and
# 128-bit SIMD code, see measure/profile.py); every earlier row ran in the default profile.
SCHEMA_V4 = """
ALTER TABLE results ADD COLUMN profile TEXT;
UPDATE results SET profile = 'default' WHERE profile IS NULL;
"""
MIGRATIONS = {2: SCHEMA_V2, 3: SCHEMA_V3, 4: SCHEMA_V4}
SKIP_COLUMNS = ("job_hash", "stage", "kind", "model", "method", "sparsity", "format", "engine",
                "batch", "seed", "reason", "spec")

COLUMNS = ("job_hash", "kind", "status", "reason", "model", "method", "sparsity", "format",
           "engine", "batch", "threads", "seed", "code_version", "p50_ms", "p90_ms", "p99_ms",
           "mean_ms", "iqr_ms", "throughput", "param_bytes", "file_bytes", "peak_rss_bytes",
           "accuracy", "value_encoding", "scope", "train_accuracy", "val_accuracy", "converged",
           "profile")
JSON_COLUMNS = ("spec", "samples", "extra")
#: the columns a query may match, per table (those of the schema after every migration)
TABLE_COLUMNS = {
    "results": ("id", "created", "machine_id", *COLUMNS, *JSON_COLUMNS),
    "skipped": (*SKIP_COLUMNS, "machine_id", "created"),
}
NUMERIC_COLUMNS = ("sparsity", "batch", "threads", "seed", "p50_ms", "p90_ms", "p99_ms",
                   "mean_ms", "iqr_ms", "throughput", "param_bytes", "file_bytes",
                   "peak_rss_bytes", "accuracy")
