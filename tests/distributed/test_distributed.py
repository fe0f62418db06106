"""Studies on a Dask cluster (``study --workers/--cluster``) and ``prunebench merge``.

The cluster test runs a small study (every job kind, controls included) on a local cluster
of 2 worker processes with ``hosts: all`` (timed jobs pinned to the machine's hosts), SIGKILLs
a worker in the middle of its first timed call, and checks that the study completes with exactly the job hashes and
statuses of a local-runner run, no duplicate, every row from this machine, and no two timings
overlapping. About 40 s on 2 shared cores."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from prunebench.errors import BadInputError  # noqa: E402

from ..study_helpers import run_reference, tiny_spec_text, write_spec  # noqa: E402

#: the tiny study with every job kind (controls, a profile), timed jobs pinned to this machine
SPEC = tiny_spec_text("tiny-distributed", extra=(
    "controls: {matched: [digits-lenet300], quantized: [digits-lenet300]}\n"
    "profile: {method: magnitude, sparsity: 0.9, batch: 1}\n"
    "hosts: all\n"))


def job_table(db: Path) -> dict[str, str]:
    """{job_hash: status} of results and skip records; asserts no duplicate per machine."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        dup = c.execute("SELECT job_hash, machine_id, COUNT(*) FROM results GROUP BY job_hash, "
                        "machine_id HAVING COUNT(*) > 1").fetchall()
        assert dup == [], f"duplicate rows: {dup}"
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        out = {h: "skipped" for (h,) in c.execute("SELECT job_hash FROM skipped")}
        out.update(c.execute("SELECT job_hash, status FROM results"))
    finally:
        c.close()
    return out


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    return write_spec(tmp_path_factory.mktemp("spec"), SPEC)


@pytest.fixture(scope="module")
def reference_db(spec_path, tmp_path_factory) -> Path:
    """The same study run by the local runner (a study of its own: the tests that use it are
    marked slow)."""
    return run_reference(spec_path, tmp_path_factory.mktemp("local"))


def _kill_once(marker: str) -> None:
    """Worker setup (runs in every worker process, also in one the nanny restarts): the
    first timed call of the whole cluster SIGKILLs its own worker, mid-job."""
    from prunebench.study import stages

    if getattr(stages.time_call, "_kill_once", False):
        return
    real = stages.time_call

    def time_call(*args, **kwargs):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return real(*args, **kwargs)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    time_call._kill_once = True
    stages.time_call = time_call


@pytest.mark.slow
def test_worker_killed_mid_job_study_completes_with_the_local_rows(spec_path, reference_db,
                                                                    tmp_path):
    import functools

    import cloudpickle

    from prunebench.measure import fingerprint
    from prunebench.study.runner import run_study
    from prunebench.study.spec import load_spec

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    marker = tmp_path / "killed.pid"
    out = tmp_path / "cluster"
    t0 = time.perf_counter()
    summary = run_study(load_spec(str(spec_path)), out, progress=False, report=False,
                        workers=2, worker_setup=functools.partial(_kill_once, str(marker)))
    wall = time.perf_counter() - t0
    assert marker.exists(), "no worker was killed"
    killed = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    assert summary["not_run"] == 0 and summary["pending"] == 0, summary
    assert summary["cluster"]["workers"] == 2
    db = out / "results.sqlite"
    assert job_table(db) == job_table(reference_db)  # same job hashes and statuses
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert {m for (m,) in c.execute("SELECT machine_id FROM results")} == \
            {fingerprint()["id"]}
        windows = []
        for kind, extra in c.execute("SELECT kind, extra FROM results WHERE kind IN "
                                     "('latency', 'profile', 'quant-latency')"):
            lock = json.loads(extra)["timing_lock"]
            windows.append((lock["acquired"], lock["released"], lock["pid"]))
    finally:
        c.close()
    timed = sqlite3.connect(reference_db).execute(
        "SELECT COUNT(*) FROM results WHERE kind IN ('latency', 'profile', 'quant-latency')"
    ).fetchone()[0]
    assert len(windows) == timed >= 10
    windows.sort()
    for a, b in zip(windows, windows[1:]):
        assert a[1] <= b[0], f"two timings overlapped: {a} {b}"
    assert killed not in {w[2] for w in windows}  # the killed run's rows never arrived
    assert not (out / ".work").exists()
    print(f"cluster study with a killed worker: {wall:.1f} s")


@pytest.mark.slow
def test_resume_on_cluster_runs_nothing_new(spec_path, reference_db, tmp_path):
    """A study finished by the local runner is finished for a local cluster too (same
    machine): nothing is submitted, nothing is stored twice."""
    from prunebench.study.runner import run_study
    from prunebench.study.spec import load_spec

    out = tmp_path / "resume"
    out.mkdir()
    shutil.copy(reference_db, out / "results.sqlite")
    summary = run_study(load_spec(str(spec_path)), out, progress=False, report=False,
                        workers=1)
    assert summary["ran"] == 0 and summary["pending"] == 0
    assert job_table(out / "results.sqlite") == job_table(reference_db)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.slow
def test_unreachable_scheduler_is_one_line_exit_2_before_any_work(spec_path, tmp_path):
    out = tmp_path / "never"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "prunebench", "study", str(spec_path), "--out",
                        str(out), "--cluster", f"tcp://127.0.0.1:{_free_port()}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunebench: error: --cluster: cannot reach"), \
        p.stderr
    assert not (out / "results.sqlite").exists()
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers: got 0"),
    (["--workers", "100000"], "--workers: got 100000"),
    (["--workers", "1", "--cluster", "tcp://127.0.0.1:1"], "give one of them"),
    (["--cluster", " "], "--cluster: got ' '"),
])
def test_bad_cluster_options(spec_path, tmp_path, capsys, args, message):
    from prunebench.cli import main

    out = tmp_path / "bad"
    assert main(["study", str(spec_path), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (out / "results.sqlite").exists()


def test_hosts_key_is_checked():
    from prunebench.study.spec import validate

    assert validate({"models": ["digits-lenet300"]}).hosts == "one"
    assert validate({"models": ["digits-lenet300"], "hosts": "all"}).hosts == "all"
    with pytest.raises(BadInputError, match=r"hosts: got 'some'; allowed: one, all"):
        validate({"models": ["digits-lenet300"], "hosts": "some"})


# ------------------------------------------------------------------------------ merge


def _as_other_machine(src: Path, dst: Path, mid: str, hostname: str, keep: int | None = None):
    """A copy of ``src`` as if measured on machine ``mid``; with ``keep``, the first ``keep``
    rows of the original machine stay too (rows both databases hold)."""
    shutil.copy(src, dst)
    c = sqlite3.connect(dst)
    try:
        (old, fp), = c.execute("SELECT id, fingerprint FROM machines").fetchall()
        fp = json.loads(fp)
        fp.update(id=mid, hostname=hostname)
        c.execute("PRAGMA foreign_keys = ON")
        c.execute("INSERT INTO machines VALUES (?, ?)", (mid, json.dumps(fp)))
        ids = [r[0] for r in c.execute("SELECT id FROM results ORDER BY id")]
        c.execute(f"INSERT INTO results (job_hash, created, kind, status, reason, model, method,"
                  f" sparsity, format, engine, batch, threads, seed, machine_id, code_version, "
                  f"spec, samples, p50_ms, p90_ms, p99_ms, mean_ms, iqr_ms, throughput, "
                  f"param_bytes, file_bytes, peak_rss_bytes, accuracy, extra, value_encoding, "
                  f"scope) SELECT job_hash, created, kind, status, reason, model, method, "
                  f"sparsity, format, engine, batch, threads, seed, '{mid}', code_version, spec,"
                  f" samples, p50_ms * 2, p90_ms, p99_ms, mean_ms, iqr_ms, throughput, "
                  f"param_bytes, file_bytes, peak_rss_bytes, accuracy, extra, value_encoding, "
                  f"scope FROM results")
        for rid, extra in c.execute("SELECT id, extra FROM results WHERE machine_id=?",
                                    (mid,)).fetchall():
            e = json.loads(extra) if extra else None
            if isinstance(e, dict):  # the side-by-side references ran twice as long there too
                for k in ("reference", "fastest_dense"):
                    if isinstance(e.get(k), dict):
                        e[k]["p50_ms"] *= 2
                c.execute("UPDATE results SET extra=? WHERE id=?", (json.dumps(e), rid))
        c.execute("UPDATE skipped SET machine_id=?", (mid,))
        drop = ids if keep is None else ids[keep:]
        c.executemany("DELETE FROM results WHERE id=?", [(i,) for i in drop])
        if keep is None:
            c.execute("DELETE FROM machines WHERE id=?", (old,))
        c.commit()
    finally:
        c.close()


@pytest.mark.slow
def test_merge_two_machines(reference_db, tmp_path, capsys):
    from prunebench.cli import main
    from prunebench.report import data as D

    n = sqlite3.connect(reference_db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    a = tmp_path / "a.sqlite"
    b = tmp_path / "b.sqlite"
    shutil.copy(reference_db, a)
    _as_other_machine(reference_db, b, "b" * 16, "machine-b", keep=5)  # 5 rows of A as well
    before = {p: p.read_bytes() for p in (a, b)}
    out = tmp_path / "merged" / "all.sqlite"
    assert main(["merge", str(out), str(a), str(b), str(a), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"] == 2 * n and doc["machines"] == 2
    assert [i["results_added"] for i in doc["inputs"]] == [n, n, 0]
    assert {p: p.read_bytes() for p in (a, b)} == before  # inputs only read
    c = sqlite3.connect(out)
    try:
        per = dict(c.execute("SELECT machine_id, COUNT(*) FROM results GROUP BY machine_id"))
        assert sorted(per.values()) == [n, n]
        assert c.execute("SELECT COUNT(*) FROM (SELECT DISTINCT job_hash, machine_id FROM "
                         "results)").fetchone()[0] == 2 * n
        skips = sqlite3.connect(reference_db).execute("SELECT COUNT(*) FROM skipped")
        assert c.execute("SELECT COUNT(*) FROM skipped").fetchone()[0] == 2 * skips.fetchone()[0]
    finally:
        c.close()
    assert [p.name for p in out.parent.iterdir()] == ["all.sqlite"]  # no temporary left
    # the report compares the machines: B's latencies are twice A's, against its own baseline
    mt = D.machine_table(D.load(out))
    assert set(mt.hostname) == {"machine-b", json.loads(sqlite3.connect(a).execute(
        "SELECT fingerprint FROM machines").fetchone()[0])["hostname"]}
    for _, g in mt.groupby(["model", "batch", "pair"]):
        assert len(g) == 2 and g.best_speedup.nunique() == 1


@pytest.mark.slow
def test_merge_and_dry_run_read_paths_with_question_marks_and_hashes(reference_db, tmp_path,
                                                                       capsys):
    """A ``?`` or ``#`` in a database path is part of the file name (it used to end the SQLite
    URI: ``in?x.sqlite`` opened, or created, a database called ``in``)."""
    from prunebench.cli import main
    from prunebench.study.store import peek

    n = sqlite3.connect(reference_db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    odd = tmp_path / "in?x#1.sqlite"
    shutil.copy(reference_db, odd)
    out = tmp_path / "out.sqlite"
    assert main(["merge", str(out), str(odd), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == n
    machine = sqlite3.connect(odd).execute("SELECT id FROM machines").fetchone()[0]
    assert len(peek(odd, machine)[0]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in?x#1.sqlite", "out.sqlite"]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "directory", "not-sqlite", "foreign", "out-is-input",
                                  "out-exists", "out-under-file"])
def test_merge_bad_inputs_one_line_exit_2_nothing_written(reference_db, tmp_path, capsys, case):
    from prunebench.cli import main

    a = tmp_path / "a.sqlite"
    shutil.copy(reference_db, a)
    out = tmp_path / "out.sqlite"
    inputs = [str(a)]
    if case == "missing":
        inputs.append(str(tmp_path / "nope.sqlite"))
    elif case == "directory":
        inputs.append(str(tmp_path))
    elif case == "not-sqlite":
        (tmp_path / "x.sqlite").write_text("hello")
        inputs.append(str(tmp_path / "x.sqlite"))
    elif case == "foreign":
        c = sqlite3.connect(tmp_path / "f.sqlite")
        c.execute("CREATE TABLE t (x)")
        c.close()
        inputs.append(str(tmp_path / "f.sqlite"))
    elif case == "out-is-input":
        out = a
    elif case == "out-exists":
        out.write_text("keep me")
    elif case == "out-under-file":
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "out.sqlite"
    listing = sorted(p.name for p in tmp_path.iterdir())
    before = a.read_bytes()
    assert main(["merge", str(out), *inputs]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prunebench: error: merge: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert a.read_bytes() == before
    if case == "out-exists":
        assert out.read_text() == "keep me"


def test_merge_needs_an_input(tmp_path):
    from prunebench.study.merge import merge_databases

    with pytest.raises(BadInputError, match="no input database"):
        merge_databases(tmp_path / "o.sqlite", [])


@pytest.mark.slow
def test_hosts_all_plans_the_timed_jobs_per_machine(spec_path, reference_db, tmp_path):
    """With ``hosts: all``, a second machine joining a finished study gets exactly the timed
    jobs (pinned to its hosts, the prune outcome taken from the database) and nothing else;
    with ``hosts: one`` nothing is left to run."""
    import dataclasses

    from prunebench.measure import fingerprint
    from prunebench.study.distributed import ClusterExecutor
    from prunebench.study.display import Display
    from prunebench.study.interrupt import InterruptGuard
    from prunebench.study.runner import plan_jobs
    from prunebench.study.spec import load_spec
    from prunebench.study.store import Store

    here = fingerprint()
    other = dict(here, id="b" * 16, hostname="board")

    class TwoMachines:
        machines = {here["id"]: {"fingerprint": here, "hosts": {"10.0.0.1"}, "workers": 1},
                    other["id"]: {"fingerprint": other, "hosts": {"10.0.0.2"}, "workers": 1}}

    spec = load_spec(str(spec_path))
    jobs = plan_jobs(spec)
    db = tmp_path / "results.sqlite"
    shutil.copy(reference_db, db)
    with Store(db) as store:
        ex = ClusterExecutor(TwoMachines(), spec, store, here, tmp_path, Display(False), None,
                             jobs, InterruptGuard())
        tasks = ex.plan()
        timed = {j.hash for j in jobs if j.kind in ("latency", "profile", "quant-latency")
                 and j.skip is None}
        assert {t.machine for t in tasks} == {other["id"]}
        assert {t.label for t in tasks} == {"timed", "quant-timed"}
        assert {j.hash for t in tasks for j in t.jobs} == timed
        assert all(t.state is None for t in tasks)  # pruned fine: load or prune again
        assert set(ex.status()) == set(job_table(reference_db)) - timed  # pending on "board"
        one = ClusterExecutor(TwoMachines(), dataclasses.replace(spec, hosts="one"), store,
                              here, tmp_path, Display(False), None, jobs, InterruptGuard())
        assert one.plan() == []
