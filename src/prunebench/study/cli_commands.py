"""Plain functions behind ``prunebench study`` and ``prunebench report`` (the Typer wrappers
live in :mod:`prunebench.cli`). They print to stdout/stderr and return the JSON document they
printed; errors are raised as :class:`~prunebench.errors.PrunebenchError` (exit 2) and Ctrl-C
as KeyboardInterrupt (exit 130)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import BadInputError, PrunebenchError


#: a grid of more jobs than this is counted by arithmetic (``count_jobs``), never expanded, by
#: ``--dry-run`` (expanding costs ~15 us and ~1 KB per job: 1e8 jobs took 9 GB and minutes)
EXPAND_LIMIT = 200_000
#: ``--max-hours`` default: a study estimated longer warns in ``--dry-run`` and needs ``--yes``
MAX_HOURS = 24.0


def _emit(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def study_command(spec: str | None = None, out: str = "runs", dry_run: bool = False,
                  as_json: bool = False, retry_failed: bool = False,
                  progress: bool | None = None, workers: int | None = None,
                  cluster: str | None = None, yes: bool = False,
                  max_hours: float = MAX_HOURS) -> dict:
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
    from .runner import check_out_dir, run_study
    from .spec import load_spec

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
            _emit(doc)
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
        _emit(summary)
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


def dry_run_summary(spec, out: Path) -> dict:
    """Job counts and estimated seconds, reading (never writing) ``OUT/results.sqlite``."""
    from ..measure import fingerprint
    from .estimate import OVERHEAD_S, ROW_S, Estimator
    from .jobs import count_jobs
    from .runner import DB_NAME, ENV_FAILURE, plan_jobs
    from .store import peek

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


def report_command(db: str = "runs/results.sqlite", output: str | None = None,
                   as_json: bool = False, figures: str | None = None) -> dict:
    """``prunebench report [DB] [-o FILE.html] [--figures DIR] [--json]``: write the HTML
    report (and a Markdown summary beside it, same name with .md) from a results database.
    The default output is ``report.html`` next to the database. ``--figures DIR`` also writes
    every figure as PDF and SVG and every table as CSV and LaTeX into DIR."""
    from ..report import write_report

    dbp = Path(db)
    if not dbp.exists():
        raise BadInputError(f"database: {db!r} does not exist")
    target = Path(output) if output else dbp.with_name("report.html")
    paths = write_report(dbp, target, figures=figures)
    doc = {"database": str(dbp), "report": str(paths["html"]),
           "markdown": str(paths["markdown"]), "conclusions": paths["conclusions"],
           "findings": paths["findings"]}
    if "exported" in paths:
        doc["exported"] = {k: [str(p) for p in v] for k, v in paths["exported"].items()}
    if as_json:
        _emit(doc)
    else:
        print(f"report: {paths['html']} (summary {paths['markdown']})")
        if "exported" in paths:
            ex = paths["exported"]
            print(f"figures: {len(ex['figures']) // 2} (PDF + SVG), tables: "
                  f"{len(ex['tables']) // 2} (CSV + LaTeX) in {figures}")
        for c in paths["conclusions"]:
            print(f"* {c}")
        for f in paths["findings"]:
            print(f"- {f}")
    return doc


def _duration(seconds: float) -> str:
    """'12 min 03 s' below two hours, else hours (or days) with a unit a reader can take in."""
    if seconds < 7200:
        return _minutes(seconds)
    hours = seconds / 3600
    return f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.0f} days"


def _minutes(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{seconds:.1f} s"
