"""``prunebench study``: run a study (or count it with ``--dry-run``), and the plain function
behind it. :func:`study_command` prints to stdout/stderr and returns the JSON document it
printed; errors are raised as :class:`~prunebench.errors.PrunebenchError` (exit 2) and Ctrl-C
as KeyboardInterrupt (exit 130)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..errors import BadInputError, PrunebenchError
from .options import JsonSummary, run_in_profile
from .output import emit_json

if TYPE_CHECKING:
    from ..study.spec import Spec

#: a grid of more jobs than this is counted by arithmetic (``count_jobs``), never expanded, by
#: ``--dry-run`` (expanding costs ~15 us and ~1 KB per job: 1e8 jobs took 9 GB and minutes)
EXPAND_LIMIT = 200_000
#: ``--max-hours`` default: a study estimated longer warns in ``--dry-run`` and needs ``--yes``
MAX_HOURS = 24.0


def study(spec: Annotated[Optional[str], typer.Argument(
              help="YAML path or built-in: default, smoke, full (default: default)")] = None,
          out_dir: Annotated[str, typer.Option(
              "--out", help="folder for the database and report")] = "runs",
          dry_run: Annotated[bool, typer.Option("--dry-run",
                                                help="print job count and estimate")] = False,
          retry_failed: Annotated[bool, typer.Option(
              "--retry-failed", help="run again jobs stored as failed")] = False,
          workers: Annotated[Optional[int], typer.Option(
              "--workers", help="run on a local Dask cluster of N worker processes")] = None,
          cluster: Annotated[Optional[str], typer.Option(
              "--cluster", help="run on the workers of a Dask scheduler "
                                "(tcp://host:8786)")] = None,
          yes: Annotated[bool, typer.Option(
              "--yes", help="run even when estimated above --max-hours")] = False,
          max_hours: Annotated[float, typer.Option(
              "--max-hours", help="estimate above which --dry-run warns and the run asks for "
                                  "--yes")] = MAX_HOURS,
          as_json: JsonSummary = False) -> None:
    """Run a study: train, prune, encode, verify and measure a grid; store every row and
    write the report. Re-running skips what is stored."""
    from ..study.spec import load_spec

    run_profile = load_spec(spec).run_profile
    if run_profile != "default" and cluster is not None:
        raise BadInputError(f"--cluster: got {cluster!r} with run_profile {run_profile}; the "
                            "profile is set in processes prunebench starts: run it locally "
                            "(with or without --workers)")
    run_in_profile(run_profile)
    # study_command prints its own summary (JSON with --json)
    study_command(spec, out=out_dir, dry_run=dry_run, as_json=as_json, retry_failed=retry_failed,
                  workers=workers, cluster=cluster, yes=yes, max_hours=max_hours)


def study_command(spec: str | None = None, out: str = "runs", dry_run: bool = False,
                  as_json: bool = False, retry_failed: bool = False,
                  progress: bool | None = None, workers: int | None = None,
                  cluster: str | None = None, yes: bool = False,
                  max_hours: float = MAX_HOURS) -> dict[str, Any]:
    """``prunebench study [SPEC] [--out DIR] [--dry-run] [--json] [--retry-failed]
    [--workers N | --cluster ADDRESS]``.

    SPEC is a YAML file or a built-in study (default, smoke, full; none means default).
    ``--dry-run`` validates the spec, prints the job count and the estimated time, and writes
    nothing. Otherwise the study runs (resuming what ``OUT/results.sqlite`` holds) and writes
    ``OUT/report.html`` and ``OUT/report.md``; ``--json`` then prints the summary (jobs, done,
    skipped, failed, database, report, ...). ``--workers N`` runs the jobs on a local Dask
    cluster of N worker processes, ``--cluster ADDRESS`` on a running ``dask scheduler``'s
    workers (see :mod:`prunebench.study.distributed`); ``--dry-run`` connects to neither.
    A study estimated above ``--max-hours`` (default 24) warns in ``--dry-run`` and starts only
    with ``--yes``."""
    from ..study.runner import check_out_dir, run_study
    from ..study.spec import load_spec

    s = load_spec(spec)
    outp = Path(out)
    if workers is not None and cluster is not None:
        raise BadInputError(f"--cluster: got {cluster!r} together with --workers {workers}; "
                            "give one of them")
    if isinstance(max_hours, bool) or not isinstance(max_hours, (int, float)) \
            or not 0 < max_hours < float("inf"):
        raise BadInputError(f"--max-hours: got {max_hours!r}; allowed: a number of hours > 0")
    if dry_run:
        check_out_dir(outp)  # refuse what the real run would refuse (it writes nothing)
        doc = dry_run_summary(s, outp)
        doc["max_hours"] = max_hours
        if as_json:
            emit_json(doc)
        elif doc["pending"] is None:
            kinds = ", ".join(f"{k} {v}" for k, v in doc["jobs_by_kind"].items() if v)
            print(f"study {s.name}: {doc['jobs']:,} jobs ({kinds}; counted, too many to expand"
                  f" and compare with {doc['database']}); estimated "
                  f"{_duration(doc['estimated_s'])} ({doc['estimate_basis']})")
        else:
            kinds = ", ".join(f"{k} {v}" for k, v in doc["pending_by_kind"].items())
            print(f"study {s.name}: {doc['jobs']} jobs ({doc['skipped']} skipped by rule, "
                  f"{doc['stored']} already stored in {doc['database']}); "
                  f"{doc['pending']} to run ({kinds}); estimated {_minutes(doc['estimated_s'])}"
                  f" ({doc['estimate_basis']})")
        if doc["estimated_s"] > max_hours * 3600:
            print(f"prunebench: warning: study {s.name} is estimated at "
                  f"{_duration(doc['estimated_s'])}, above --max-hours {max_hours:g}; the real "
                  "run will ask for --yes", file=sys.stderr)
        return doc
    if not yes:  # before anything is written (or a huge grid expanded)
        est = dry_run_summary(s, outp)["estimated_s"]
        if est > max_hours * 3600:
            raise BadInputError(f"study {s.name}: estimated {_duration(est)}, above --max-hours "
                                f"{max_hours:g}; add --yes to run it anyway, or shrink the grid "
                                "(--dry-run shows the jobs)")
    show = (not as_json) if progress is None else progress
    # run_study checks the grid and the output folder before it writes anything
    summary = run_study(s, outp, progress=show,
                        retry_failed=retry_failed, workers=workers, cluster=cluster)
    if as_json:
        emit_json(summary)
    else:
        print(f"study {s.name}: {summary['jobs']} jobs: {summary['done']} done, "
              f"{summary['failed']} failed, {summary['skipped']} skipped; ran "
              f"{summary['ran']} now in {_minutes(summary['wall_s'])}; database "
              f"{summary['database']}; report {summary['report'] or summary.get('report_error')}")
        if summary.get("cluster"):
            c = summary["cluster"]
            print(f"cluster {c['scheduler']}: {c['workers']} worker(s) on "
                  f"{len(c['machines'])} machine(s)"
                  + (f"; {summary['not_run']} job(s) did not run (run again to retry)"
                     if summary.get("not_run") else ""))
    if summary.get("report_failed"):  # the rows are stored; a missing report is not success
        raise PrunebenchError(f"{summary['report_error']}; every result is in "
                              f"{summary['database']}: run `prunebench report "
                              f"{summary['database']}` once there is space")
    return summary


def dry_run_summary(spec: Spec, out: Path) -> dict[str, Any]:
    """Job counts and estimated seconds, reading (never writing) ``OUT/results.sqlite``."""
    from ..measure import fingerprint
    from ..study.estimate import OVERHEAD_S, ROW_S, Estimator
    from ..study.jobs import count_jobs
    from ..study.runner import DB_NAME, ENV_FAILURE, plan_jobs
    from ..study.store import peek

    db = out / DB_NAME
    counts = count_jobs(spec)
    total = sum(counts.values())
    if total > EXPAND_LIMIT:  # count, never materialise: per-kind overheads x counted jobs
        return {"study": spec.name, "jobs": total, "jobs_by_kind": counts, "skipped": None,
                "stored": None, "pending": None, "pending_by_kind": None,
                "estimated_s": sum(n * (OVERHEAD_S[k] + ROW_S) for k, n in counts.items()),
                "estimate_basis": "rough: each kind's fixed cost x its jobs, before duplicates "
                                  "and static skips are dropped",
                "database": str(db)}
    jobs = plan_jobs(spec)
    status, timings = peek(db, fingerprint()["id"], retried=ENV_FAILURE)
    static = [j for j in jobs if j.skip]
    pending = [j for j in jobs if not j.skip
               and status.get(j.hash) not in ("ok", "failed", "skipped-runtime")]
    est = Estimator(spec, timings)
    by_kind: dict[str, int] = {}
    for j in pending:
        by_kind[j.kind] = by_kind.get(j.kind, 0) + 1
    return {"study": spec.name, "jobs": len(jobs), "skipped": len(static),
            "stored": len(jobs) - len(static) - len(pending), "pending": len(pending),
            "pending_by_kind": by_kind, "estimated_s": est.total_s(pending),
            "estimate_basis": ("stored timings and cost constants" if timings
                               else "cost constants"),
            "database": str(db)}


def _duration(seconds: float) -> str:
    """'12 min 03 s' below two hours, else hours (or days) with a unit a reader can take in."""
    if seconds < 7200:
        return _minutes(seconds)
    hours = seconds / 3600
    return f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.0f} days"


def _minutes(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{seconds:.1f} s"
