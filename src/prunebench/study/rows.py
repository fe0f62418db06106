"""What a study's executor hands the store, as typed data: a job's status
(:class:`JobStatus`), its result row (:class:`ResultRow`) or skip record (:class:`SkipRecord`),
and the reason a failed row gives. The store takes plain dicts: ``as_dict()`` at that
boundary gives the same record, key for key, that the executor stored as a dict before."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import Job


class JobStatus(str, Enum):
    """A job's status, as stored in SQLite and shown to users (the strings are the values:
    ``JobStatus.OK == "ok"``, and formatting gives ``ok``).

    A result row is ``ok`` or ``failed``; a skip record makes a job ``skipped-static``
    (skipped by rule when the grid was expanded) or ``skipped-runtime`` (found not to apply
    when it ran); a job with neither is ``pending``. ``skipped`` is the two skips together,
    as summaries count them (and a prune outcome the jobs on its model inherit)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED_STATIC = "skipped-static"
    SKIPPED_RUNTIME = "skipped-runtime"
    SKIPPED = "skipped"
    PENDING = "pending"

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return format(self.value, format_spec)

    @property
    def skipped(self) -> bool:
        return self in (JobStatus.SKIPPED, JobStatus.SKIPPED_STATIC, JobStatus.SKIPPED_RUNTIME)


# The reason of a job that failed because of the machine, not of the job (a full disk, a disk
# quota, no memory): a resume forgets such rows and runs the jobs again, and the rows of jobs
# on a pruned model whose prune job failed so carry the prefix too (inside their reason).
ENV_FAILURE = "environment, retried on resume: "


def failure_reason(e: BaseException) -> str:
    """The stored reason of a job that raised ``e``: marked with :data:`ENV_FAILURE` when
    the machine, not the job, failed (OSError: ENOSPC, EDQUOT, EIO, ...; MemoryError)."""
    env = isinstance(e, (OSError, MemoryError))
    return (ENV_FAILURE if env else "") + one_line(e)


def one_line(e: BaseException) -> str:
    """``e`` as one line of at most 400 characters: its type and message."""
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= 400 else text[:397] + "..."


#: the stored statuses of a job that is not run again (a static skip is re-judged each run)
SETTLED = (JobStatus.OK, JobStatus.FAILED, JobStatus.SKIPPED_RUNTIME)


@dataclass
class ResultRow:
    """One result of a job (a row of the ``results`` table, less what the store adds: the
    machine and the time). ``extra`` holds what has no column (stored as JSON)."""

    job_hash: str | None
    kind: str
    status: JobStatus
    model: str
    spec: dict[str, Any]
    reason: str | None = None
    method: str | None = None
    scope: str | None = None
    sparsity: float | None = None
    format: str | None = None
    value_encoding: str | None = None
    engine: str | None = None
    batch: int | None = None
    threads: int | None = None
    seed: int | None = None
    code_version: str | None = None
    samples: list[float] | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    iqr_ms: float | None = None
    throughput: float | None = None
    param_bytes: int | None = None
    file_bytes: int | None = None
    accuracy: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    converged: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, job: Job, status: JobStatus, **fields: Any) -> "ResultRow":
        """A row of ``job`` with its identifying fields (kind, model, method, scope, sparsity,
        seed, format, value encoding, engine, batch, threads, spec) and ``fields``."""
        m = job.method
        ident: dict[str, Any] = dict(
            job_hash=job.hash, kind=job.kind, status=status, model=job.model,
            method=m.name if m else "dense", scope=m.scope if m else None,
            sparsity=job.sparsity, seed=job.seed, format=job.format,
            value_encoding=job.values, engine=job.engine, batch=job.batch,
            threads=job.threads, spec=job.key)
        ident.update(fields)
        return cls(**ident)

    @property
    def failed(self) -> bool:
        return self.status == JobStatus.FAILED

    def as_dict(self) -> dict[str, Any]:
        """The row as :meth:`~prunebench.study.store.Store.add` takes it (status as its
        string; ``extra`` and ``spec`` are the row's own dicts, not copies)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["status"] = JobStatus(self.status).value
        return out


def failed_row(job: Job, reason: str, extra: dict[str, Any] | None = None) -> ResultRow:
    """The failed row of ``job`` with ``reason`` (one line) and ``extra``."""
    return ResultRow.of(job, JobStatus.FAILED, reason=reason,
                        extra={"method_label": job.method_label, **(extra or {})})


@dataclass
class SkipRecord:
    """A job that was skipped, and why (a row of the ``skipped`` table): ``stage`` is
    ``static`` (by rule, when the grid was expanded) or ``runtime`` (when it ran)."""

    job_hash: str
    stage: str
    kind: str
    model: str
    method: str
    sparsity: float
    format: str | None
    engine: str | None
    batch: int | None
    seed: int
    reason: str
    spec: dict[str, Any]

    @classmethod
    def of(cls, job: Job, reason: str, stage: str) -> "SkipRecord":
        return cls(job_hash=job.hash, stage=stage, kind=job.kind, model=job.model,
                   method=job.method_label, sparsity=job.sparsity, format=job.format,
                   engine=job.engine, batch=job.batch, seed=job.seed, reason=reason,
                   spec=job.key)

    def as_dict(self) -> dict[str, Any]:
        """The record as :meth:`~prunebench.study.store.Store.add_skipped` takes it."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
