"""Run a study: expand the spec into jobs, skip what the database already holds, and run the
rest one at a time, each result written in its own transaction.

Resuming is the same as running: a job whose hash is stored for this machine (ok or failed, or
skipped at run time) is not run again, so a study killed at any point (Ctrl-C, SIGKILL, a power
cut) finishes with exactly the rows of an uninterrupted run when started again. Pruned models
are cached as model files under ``OUT/models/<prune job hash>.pbm`` so a resumed study does not
prune again; dense checkpoints live in the zoo cache.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..errors import BadInputError
from .display import Display
from .estimate import Estimator
from .executor import Executor
from .interrupt import InterruptGuard
from .jobs import Job, check_nonempty, expand
from .locks import out_dir_lock
from .rows import ENV_FAILURE, SETTLED, JobStatus, SkipRecord
from .spec import Spec
from .store import Store, check_writable

if TYPE_CHECKING:
    from .distributed import ClusterExecutor, Fleet

__all__ = ["DB_NAME", "ENV_FAILURE", "REPORT_NAME", "check_out_dir", "plan_jobs", "run_study",
           "summarize"]

DB_NAME = "results.sqlite"
REPORT_NAME = "report.html"


def plan_jobs(spec: Spec) -> list[Job]:
    """The study's jobs, without duplicates, in run order."""
    jobs: list[Job] = []
    seen: set[str] = set()
    for j in expand(spec):
        if j.hash not in seen:
            seen.add(j.hash)
            jobs.append(j)
    check_nonempty(spec, jobs)
    return jobs


def check_out_dir(out: Path) -> None:
    """BadInputError (one line) when ``out`` cannot hold a study's results."""
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out: {str(out)!r} is a file, expected a directory")
    check_writable(out / DB_NAME)


def run_study(spec: Spec, out: str | Path = "runs", *, progress: bool = True,
              retry_failed: bool = False, report: bool = True, workers: int | None = None,
              cluster: str | None = None,
              worker_setup: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Run ``spec`` with results in ``OUT/results.sqlite`` and the report in ``OUT/report.html``.

    Returns the summary: jobs, done (ok rows), failed, skipped, ran (jobs run now), database,
    report, wall_s. ``progress`` shows a Rich bar on stderr when it is a terminal and plain
    progress lines otherwise (see :class:`Display`). Ctrl-C stops between two transactions: the message says how many rows this
    run stored, and KeyboardInterrupt propagates (the CLI exits 130).

    ``workers`` (a local Dask cluster of that many worker processes) or ``cluster`` (the
    address of a running ``dask scheduler``) run the jobs on Dask workers instead; this
    process stays the only writer of the database (see :mod:`.distributed`). ``worker_setup``
    is a function run once in every worker process (e.g. to register extra engines)."""
    from ..measure import fingerprint

    out = Path(out)
    jobs = plan_jobs(spec)
    check_out_dir(out)
    t0 = time.perf_counter()
    fp = fingerprint()
    db = out / DB_NAME
    threads_before = torch.get_num_threads()
    display = Display(progress)
    ex: Executor | ClusterExecutor | None = None
    lock = None
    fleet: Fleet | None = None
    guard = InterruptGuard()
    try:
        if workers is not None or cluster is not None:
            from .distributed import Fleet

            # before the database exists: an unreachable scheduler writes nothing
            fleet = Fleet.connect(workers=workers, cluster=cluster, setup=worker_setup)
        with guard, Store(db) as store:
            lock = out_dir_lock(out)  # after the database is known to be ours
            store.check_rows()  # a damaged row: one line now, not after the study ran
            machine_ids = [fp["id"]] + [m for m in (fleet.machine_ids if fleet else [])
                                        if m != fp["id"]]
            if retry_failed:
                for mid in machine_ids:
                    earlier = store.job_status(mid)
                    again = [j.hash for j in jobs if earlier.get(j.hash) == JobStatus.FAILED]
                    store.forget(again, mid, results=True)
            for mid in machine_ids:  # a full disk or no memory then: the job was never judged
                env = store.environment_failures(mid, ENV_FAILURE)
                store.forget([j.hash for j in jobs if j.hash in env], mid, results=True)
            status = store.job_status(fp["id"])
            stale = [j.hash for j in jobs
                     if j.skip is None and status.get(j.hash) == JobStatus.SKIPPED_STATIC]
            store.forget(stale, fp["id"])
            store.add_skipped([SkipRecord.of(j, j.skip, "static").as_dict() for j in jobs
                               if j.skip and status.get(j.hash) not in (JobStatus.OK,
                                                                        JobStatus.FAILED)], fp)
            est = Estimator(spec, store.kind_timings())
            if fleet is None:
                status = store.job_status(fp["id"])
                pending = [j for j in jobs if j.skip is None
                           and status.get(j.hash) not in SETTLED]
                local = ex = Executor(spec, store, fp, out, display, est, jobs, guard)
                display.start(len(pending), est.total_s(pending))
                local.run(pending)
                status = store.job_status(fp["id"])
            else:
                cluster_ex = ex = fleet.executor(spec, store, fp, out, display, est, jobs, guard)
                cluster_ex.run()
                status = cluster_ex.status()
            display.stop()
    except KeyboardInterrupt:
        display.stop()
        stored = ex.stored if ex is not None else 0
        print(f"prunebench: study interrupted; {stored} result(s) of this run are in {db} "
              f"(every row complete); run the same command again to resume", file=sys.stderr)
        raise
    finally:
        torch.set_num_threads(threads_before)
        if fleet is not None:
            fleet.close()
        if lock is not None:  # only the lock holder owns the scratch folder
            shutil.rmtree(out / ".work", ignore_errors=True)
            lock.release()

    summary = summarize(spec, jobs, status, db)
    summary["ran"] = ex.ran if ex is not None else 0
    if fleet is not None:
        summary["cluster"] = fleet.summary()
        summary["not_run"] = cluster_ex.not_run
    summary["report"] = None
    if report:
        from ..report import write_report

        try:
            paths = write_report(db, out / REPORT_NAME)
            summary["report"] = str(paths["html"])
            summary["report_markdown"] = str(paths["markdown"])
        except BadInputError as e:  # e.g. no study rows: nothing to report
            summary["report_error"] = str(e)
        except OSError as e:  # e.g. disk full: the rows are all stored, the CLI exits 2
            where = f"{e.filename}: " if e.filename else ""
            summary["report_error"] = f"cannot write the report: {where}{e.strerror or e}"
            summary["report_failed"] = True
        except KeyboardInterrupt:
            print(f"prunebench: interrupted while writing the report; every result is in {db} "
                  "and `prunebench report` writes the report from it", file=sys.stderr)
            raise
    summary["wall_s"] = time.perf_counter() - t0
    return summary


def summarize(spec: Spec, jobs: list[Job], status: dict[str, str],
              db: Path) -> dict[str, Any]:
    """Jobs done (ok), failed, skipped (by rule or at run time) and pending, in all and per
    kind, from the stored ``status`` {job_hash: status}."""
    buckets = (JobStatus.OK, JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.PENDING)
    counts = {b.value: 0 for b in buckets}
    by_kind: dict[str, dict[str, int]] = {}
    for j in jobs:
        s = JobStatus(status.get(j.hash, JobStatus.PENDING))
        s = JobStatus.SKIPPED if s.skipped else s
        counts[s.value] += 1
        by_kind.setdefault(j.kind, {b.value: 0 for b in buckets})[s.value] += 1
    return {"study": spec.name, "jobs": len(jobs), "done": counts[JobStatus.OK],
            "failed": counts[JobStatus.FAILED], "skipped": counts[JobStatus.SKIPPED],
            "pending": counts[JobStatus.PENDING], "by_kind": by_kind, "database": str(db)}
