import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fake_engines  # noqa: E402


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The built-in smoke study run once, uninterrupted, with the test engines registered:
    (output folder, summary)."""
    from prunebench.study.runner import run_study
    from prunebench.study.spec import load_spec

    fake_engines.register()
    out = tmp_path_factory.mktemp("smoke")
    summary = run_study(load_spec("smoke"), out, progress=False)
    return out, summary


def job_table(db) -> dict[str, str]:
    """{job_hash: status} of results and skip records of a database."""
    import sqlite3

    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = {h: "skipped" for (h,) in c.execute("SELECT job_hash FROM skipped")}
        out.update(c.execute("SELECT job_hash, status FROM results"))
        n = c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        distinct = c.execute("SELECT COUNT(DISTINCT job_hash) FROM results").fetchone()[0]
        assert n == distinct, f"{n - distinct} duplicate rows"
    finally:
        c.close()
    return out
