"""Run a study's jobs on Dask workers: ``prunebench study SPEC --workers N`` (a local cluster of
N worker processes) or ``--cluster tcp://HOST:8786`` (a running ``dask scheduler`` with
``dask worker`` processes on one or more machines, each with prunebench installed).

Who does what
-------------
* The driver (the ``prunebench study`` process) plans the jobs, keeps ``OUT/results.sqlite``
  and is its only writer: workers never open the database. Each finished task returns its
  result rows and skip records, and the driver stores each in its own transaction under the
  worker's machine fingerprint (``results`` is unique per job hash and machine, so a row that
  arrives twice is stored once).
* One task per pruned model (a prune job and the pending size/latency/profile jobs on its
  model) runs :meth:`.executor.Executor.run_group`, the local runner's own code, in the worker.
  A worker on the driver's machine reads and writes the pruned-model cache ``OUT/models``;
  a worker elsewhere keeps its own cache under its temporary folder. A worker trains a dense
  model (or loads its cached checkpoint) under a per-machine lock on that model, so two
  workers on one machine never train the same model at once: the second finds it cached.
* A worker killed mid-task loses nothing stored: its rows were never sent, the scheduler runs
  the task again on another worker (a restarted one for a local cluster), and the driver
  stores the rows of the run that finishes.

Timing is exclusive per machine
-------------------------------
A latency, profile or quant-latency job holds ``flock`` on ``$TMPDIR/prunebench-timing-<machine
id>.lock`` from compiling to its last timed call, so two timings never overlap on one machine
(whatever study or cluster they belong to); pruning, training, encoding and accuracy jobs
share the machine freely. A kernel lock is dropped the instant its holder dies (even by
SIGKILL), unlike a ``distributed.Lock`` lease, which a killed worker keeps for the lease timeout
(30 s by default) and which can be handed out twice when a lease times out. Each timed row
records when it held the lock (``extra.timing_lock``).

Fleets
------
Every row carries its worker's fingerprint. A spec with ``hosts: all`` runs the timed jobs on
every distinct machine of the cluster (tasks restricted to that machine's hosts), so each
device measures the same grid; other jobs run once, on any worker. A job counts as done when
one of the machines taking part (the driver's and the workers') has it stored; with ``hosts:
all`` a timed job counts per machine.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import BadInputError
from .display import Display
from .estimate import JobCosts
from .executor import Dense, Executor, with_lock
from .interrupt import InterruptGuard
from .jobs import Job
from .locks import host_lock
from .rows import SETTLED, JobStatus, ResultRow, SkipRecord, one_line
from .spec import Spec
from .store import Store

if TYPE_CHECKING:
    from distributed.diagnostics.plugin import WorkerPlugin
else:
    try:
        from distributed.diagnostics.plugin import WorkerPlugin
    except ImportError:  # Fleet.connect says how to install it
        WorkerPlugin = object

TIMED_KINDS = ("latency", "profile", "quant-latency")
QUANT_KINDS = ("quant", "quant-latency")
CONNECT_TIMEOUT_S = 5.0       # reaching the scheduler
WORKERS_TIMEOUT_S = 10.0      # a scheduler with no worker yet
_RANK: dict[str, int] = {JobStatus.SKIPPED_STATIC: 0, JobStatus.SKIPPED_RUNTIME: 1, JobStatus.OK: 2,
         JobStatus.FAILED: 3}
#: what a task returns: per record, "row" or "skip" and the record
Record = tuple[str, "ResultRow | SkipRecord"]


@dataclass
class Task:
    """One Dask task: the jobs of one pruned model (``pj``, its prune job) or quantization
    jobs, for ``machine`` (None: any); ``state`` the prune job's stored outcome, None, or
    ("task", index of the task that prunes); ``future`` once submitted."""

    label: str
    pj: Job | None
    machine: str | None
    state: Any
    jobs: list[Job]
    future: Any = None


# ------------------------------------------------------------------------------ the cluster


class Fleet:
    """A Dask client (and the local cluster it owns, if any) and the machines of its workers."""

    def __init__(self, client: Any, cluster: Any, address: str,
                 worker_fps: dict[str, dict[str, Any]]):
        self.client, self.cluster, self.address = client, cluster, address
        self.worker_fps = worker_fps   # worker address -> fingerprint

    @classmethod
    def connect(cls, workers: int | None = None, cluster: str | None = None,
                setup: Callable[[], Any] | None = None) -> "Fleet":
        """Start a local cluster of ``workers`` processes, or connect to the scheduler at
        ``cluster``; BadInputError (one line, exit 2) when that fails, before any work."""
        if workers is not None and cluster is not None:
            raise BadInputError(f"--cluster: got {cluster!r} together with --workers "
                                f"{workers}; give one of them")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or not 1 <= workers <= (os.cpu_count() or 1)):
            raise BadInputError(f"--workers: got {workers!r}; expected an integer in "
                                f"[1, {os.cpu_count() or 1}] (the number of cores)")
        if cluster is not None and (not isinstance(cluster, str) or not cluster.strip()):
            raise BadInputError(f"--cluster: got {cluster!r}; expected a scheduler address "
                                "such as tcp://host:8786")
        try:
            import distributed
        except ImportError:
            raise BadInputError("--workers/--cluster: Dask distributed is not installed; "
                                "pip install 'dask[distributed]'") from None
        import logging

        client = local = None
        try:
            if cluster is not None:
                _check_address(cluster)
                try:
                    client = distributed.Client(cluster, timeout=CONNECT_TIMEOUT_S,
                                                set_as_default=False)
                except (OSError, TimeoutError, ValueError, TypeError) as e:
                    raise BadInputError(
                        f"--cluster: cannot reach a Dask scheduler at {cluster!r} within "
                        f"{CONNECT_TIMEOUT_S:g} s ({one_line(e)}); start one with `dask "
                        "scheduler` and check the address") from None
                try:
                    client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
                except (TimeoutError, OSError):
                    raise BadInputError(
                        f"--cluster: the scheduler at {cluster!r} has no worker after "
                        f"{WORKERS_TIMEOUT_S:g} s; start them with `dask worker {cluster}`"
                    ) from None
                address = cluster
            else:
                # worker deaths are handled (the task runs again) and a task that fails is
                # one warning line of the driver's: no log lines (tracebacks) from Dask
                local = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                                 processes=True, dashboard_address=None,
                                                 silence_logs=logging.CRITICAL)
                client = distributed.Client(local, set_as_default=False)
                address = "local"
            if setup is not None:
                client.register_plugin(_Setup(setup), name="prunebench-worker-setup")
            try:
                fps = client.run(worker_fingerprint)
            except Exception as e:  # noqa: BLE001 - e.g. a worker without prunebench
                raise BadInputError(f"--cluster: a worker cannot run prunebench "
                                    f"({one_line(e)}); install prunebench on every worker "
                                    "machine") from None
        except BaseException:
            with contextlib.suppress(Exception):
                if client is not None:
                    client.close()
                if local is not None:
                    local.close()
            raise
        return cls(client, local, address, fps)

    @property
    def machines(self) -> dict[str, dict[str, Any]]:
        """machine id -> {"fingerprint", "hosts" (worker host names/IPs), "workers"}."""
        from distributed.comm import get_address_host

        out: dict[str, dict[str, Any]] = {}
        for addr, fp in sorted(self.worker_fps.items()):
            m = out.setdefault(fp["id"], {"fingerprint": fp, "hosts": set(), "workers": 0})
            m["hosts"].add(get_address_host(addr))
            m["workers"] += 1
        return out

    @property
    def machine_ids(self) -> list[str]:
        return list(self.machines)

    def executor(self, spec: Spec, store: Store, fp: dict[str, Any], out: Path,
                 display: Display, est: Any, jobs: list[Job],
                 guard: InterruptGuard) -> "ClusterExecutor":
        """The driver's executor of ``jobs`` on this cluster."""
        return ClusterExecutor(self, spec, store, fp, out, display, est, jobs, guard)

    def summary(self) -> dict[str, Any]:
        """Scheduler, workers and machines, as the study's summary reports them."""
        return {"scheduler": self.address, "workers": len(self.worker_fps),
                "machines": {mid: {"hostname": m["fingerprint"].get("hostname"),
                                   "cpu": m["fingerprint"].get("cpu"), "workers": m["workers"]}
                             for mid, m in self.machines.items()}}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()


def _check_address(address: str) -> None:
    """A malformed address is refused before a Client is made: a Client whose constructor
    failed on one prints a traceback from its finaliser and delays the exit by 10 s."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, loc = parse_address(address)
        get_backend(scheme)
        parse_host_port(loc)
    except (ValueError, TypeError) as e:
        raise BadInputError(f"--cluster: got {address!r}; expected a scheduler address such "
                            f"as tcp://host:8786 ({one_line(e)})") from None


class _Setup(WorkerPlugin):
    """A worker plugin that runs ``fn`` once in every worker process, also in a worker the
    nanny starts again after a crash (e.g. registering test engines)."""

    idempotent = True

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn

    def setup(self, worker: Any) -> None:
        self.fn()

    def teardown(self, worker: Any) -> None:
        pass


# ------------------------------------------------------------------------------ the driver


class ClusterExecutor:
    """Plans the tasks, submits them, and stores what comes back (the driver's side)."""

    def __init__(self, fleet: Fleet, spec: Spec, store: Store, fp: dict[str, Any], out: Path,
                 display: Display, est: Any, jobs: list[Job], guard: InterruptGuard):
        self.fleet, self.spec, self.store, self.fp = fleet, spec, store, fp
        self.out = Path(out).resolve()
        self.display, self.est, self.jobs, self.guard = display, est, jobs, guard
        self.prune_jobs = {j.hash: j for j in jobs if j.kind == "prune"}
        self.machines = fleet.machines
        self.participants = [fp["id"]] + [m for m in self.machines if m != fp["id"]]
        self.hosts_all = spec.hosts == "all"
        self.ran = 0
        self.stored = 0
        self.not_run = 0

    # -- state ------------------------------------------------------------------------------
    def _statuses(self) -> dict[str, dict[str, str]]:  # per machine, {job_hash: status}
        return {m: self.store.job_status(m) for m in self.participants}

    def _pinned(self, j: Job) -> bool:
        return self.hosts_all and j.kind in TIMED_KINDS

    def status(self) -> dict[str, str]:
        """{job_hash: status} over the machines taking part (a failure anywhere wins); with
        ``hosts: all`` a timed job missing on one of the workers' machines is pending."""
        st = self._statuses()
        merged: dict[str, str] = {}
        for per in st.values():
            for h, s in per.items():
                if h not in merged or _RANK[s] > _RANK[merged[h]]:
                    merged[h] = s
        if self.hosts_all:
            for j in self.jobs:
                if j.skip is None and j.kind in TIMED_KINDS and any(
                        st[m].get(j.hash) not in SETTLED for m in self.machines):
                    merged.pop(j.hash, None)
        return merged

    def _stored_prune(self, pj: Job, st: dict[str, dict[str, str]]) -> tuple[str, str] | None:
        """As :meth:`Executor._stored_prune`, over every machine taking part."""
        for m in self.participants:
            s = st[m].get(pj.hash)
            if s == "failed":
                rows = self.store.rows_for_job(pj.hash, m)
                return "failed", f"its prune job failed: {rows[0]['reason'] if rows else '?'}"
            if s == "skipped-runtime":
                rec = self.store.skipped_for_job(pj.hash, m)
                return "skipped", rec[0]["reason"] if rec else "?"
        return None

    # -- planning ---------------------------------------------------------------------------
    def plan(self) -> list[Task]:
        """The tasks to submit, in the local runner's order."""
        st = self._statuses()

        def done_any(j: Job) -> bool:
            return any(st[m].get(j.hash) in SETTLED for m in self.participants)

        tasks: list[Task] = []
        groups: dict[str, list[Job]] = {}
        quant: dict[tuple[str, int], list[Job]] = {}
        for j in self.jobs:
            if j.kind in QUANT_KINDS:
                if j.skip is None:
                    quant.setdefault((j.model, j.seed), []).append(j)
            else:
                groups.setdefault(j.prune or j.hash, []).append(j)
        for ph, members in groups.items():
            pj = self.prune_jobs[ph]
            deps = [j for j in members if j.hash != ph and j.skip is None]
            prune_now = pj.skip is None and not done_any(pj)
            state = None if prune_now else self._stored_prune(pj, st)
            here = [j for j in deps if not self._pinned(j) and not done_any(j)]
            first = None
            if prune_now or here:
                first = len(tasks)
                tasks.append(Task("group", pj, None, state,
                                  ([pj] if prune_now else []) + here))
            if not self.hosts_all:
                continue
            for m in self.machines:
                mine = [j for j in deps if self._pinned(j) and st[m].get(j.hash) not in SETTLED]
                if mine:
                    tasks.append(Task("timed", pj, m, ("task", first) if prune_now else state,
                                      mine))
        for (model, seed), js in quant.items():
            here = [j for j in js if not self._pinned(j) and not done_any(j)]
            if here:
                tasks.append(Task("quant", None, None, None, here))
            for m in (self.machines if self.hosts_all else []):
                mine = [j for j in js if self._pinned(j) and st[m].get(j.hash) not in SETTLED]
                if mine:
                    tasks.append(Task("quant-timed", None, m, None, mine))
        return tasks

    def _submit(self, fn: Callable[..., Any], *args: Any, label: str,
                machine: str | None) -> Any:
        workers = sorted(self.machines[machine]["hosts"]) if machine else None
        # hosts, not worker addresses: a worker the nanny restarts gets a new port
        return self.fleet.client.submit(fn, *args, key=f"prunebench-{label}-{uuid.uuid4().hex}",
                                        workers=workers, allow_other_workers=False, pure=False)

    # -- running ----------------------------------------------------------------------------
    def run(self) -> None:
        """Submit the planned tasks and store what each returns, as it finishes."""
        from distributed import as_completed

        tasks = self.plan()
        all_jobs = [j for t in tasks for j in t.jobs]
        self.display.start(len(all_jobs), self.est.total_s(all_jobs))
        futures: dict[Any, Task] = {}
        for t in tasks:
            state = t.state
            if isinstance(state, tuple) and state[0] == "task":
                state = tasks[state[1]].future  # waits for the task that prunes
            t.future = self._submit(run_task, self.spec, str(self.out), self.fp["id"], t.pj,
                                    t.jobs, state, t.machine,
                                    label=f"{t.label}-{t.jobs[0].model}", machine=t.machine)
            futures[t.future] = t
        for fut in as_completed(list(futures), loop=self.fleet.client.loop):
            self.guard.check()
            t = futures.pop(fut)
            if fut.status == "finished":
                self._write(fut.result())
            else:
                self._lost(t, fut)
            for j in t.jobs:
                self.display.advance(self.est.job_s(j))
            fut.release()

    def _write(self, result: dict[str, Any]) -> None:
        """Store a task's records, each in its own transaction, under its worker's machine."""
        fp = result["machine"]
        for _, payload in result["records"]:
            self.guard.check()
            if isinstance(payload, ResultRow):
                if self.store.add(payload.as_dict(), fp) is not None:
                    self.stored += 1
                if payload.failed:
                    self.display.fail()
            else:
                self.store.add_skipped([payload.as_dict()], fp)
        self.ran += result["ran"]

    def _lost(self, t: Task, fut: Any) -> None:
        """A task that did not finish (its worker died too often, a dependency failed, a bug
        outside the jobs' own error handling): its jobs stay pending for the next run."""
        try:
            err = fut.exception()
        except BaseException as e:  # noqa: BLE001 - e.g. CancelledError
            err = e
        self.not_run += len(t.jobs)
        print(f"prunebench: warning: {len(t.jobs)} job(s) of {t.jobs[0].describe()!r} "
              f"did not run ({one_line(err)}); run the same command again to retry them",
              file=sys.stderr)


# ------------------------------------------------------------------------------ the workers

_PROCESS: dict[str, Any] = {}   # per worker process: its fingerprint, loaded datasets


def worker_fingerprint() -> dict[str, Any]:
    """This process's machine fingerprint (computed once per process)."""
    if "fp" not in _PROCESS:
        from ..measure import fingerprint

        _PROCESS["fp"] = fingerprint()
    return _PROCESS["fp"]


def run_task(spec: Spec, out: str, driver_machine: str, pj: Job | None, jobs: list[Job],
             state: Any, machine: str | None = None) -> dict[str, Any]:
    """Run ``jobs`` (one pruned model's group when ``pj`` is given, else quantization jobs)
    in this worker; return their rows and skip records, never writing the database.

    ``state`` is the prune job's outcome when it is not run here: None (load the cached
    model or prune again), ('failed' | 'skipped', reason), or the result of the task that
    ran it. ``machine``: the machine the task is for (``hosts: all``), or None (any).
    """
    import torch

    from . import controls  # noqa: F401  (registers the matched controls, as spec loading does)

    if isinstance(state, dict):  # the result of the task that pruned
        state = state["prune_state"]
    if state is not None and state[0] == JobStatus.OK:
        state = None
    fp = worker_fingerprint()
    if machine is not None and fp["id"] != machine:
        # tasks are restricted to the machine's hosts (addresses); should two machines share
        # an address (containers behind one IP), a row must never carry the wrong machine
        raise RuntimeError(f"task for machine {machine} ran on machine {fp['id']} "
                           f"({fp.get('hostname')})")
    if fp["id"] == driver_machine:
        base = Path(out)  # the driver's folder, on this machine: share its model cache
    else:
        base = Path(tempfile.gettempdir()) / f"prunebench-worker-{os.getuid()}"
    ex = _WorkerExecutor(spec, fp, base, state, pj)
    threads = torch.get_num_threads()
    outcome = None
    try:
        if pj is None:
            for j in jobs:
                ex.run_quant(j)
        else:
            outcome = ex.run_group(pj, jobs)
    finally:
        shutil.rmtree(ex.work, ignore_errors=True)
        torch.set_num_threads(threads)
    return {"machine": fp, "records": ex.records, "ran": ex.ran, "prune_state": outcome}


class _NoEstimate(JobCosts):
    """Workers show no progress: the driver does."""

    def train_s(self, model: str, seed: int) -> float:
        return 0.0

    def job_s(self, job: Job) -> float:
        return 0.0


class _WorkerExecutor(Executor):
    """The local runner's executor with the database replaced by a list of records (timed
    jobs hold the machine's timing lock as in the local runner)."""

    def __init__(self, spec: Spec, fp: dict[str, Any], base: Path,
                 prune_state: tuple[str, str] | None, pj: Job | None):
        display = Display(False)
        display.start(0, 0.0)
        super().__init__(spec, None, fp, base, display, _NoEstimate(),
                         [pj] if pj is not None else [], InterruptGuard())
        self.work = base / ".work" / f"worker-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.records: list[Record] = []
        self._prune_state = prune_state
        self._datasets = _PROCESS.setdefault("datasets", {})

    def _store(self, row: ResultRow) -> None:
        if row.code_version is None:
            row.code_version = self.fp.get("git_commit")
        self.records.append(("row", with_lock(row, self._held)))
        self.stored += 1

    def _skip(self, job: Job, reason: str) -> None:
        self.records.append(("skip", SkipRecord.of(job, reason, "runtime")))

    def _stored_prune(self, pj: Job) -> tuple[str, str | None] | None:
        return self._prune_state

    def dense(self, model: str, seed: int) -> Dense:
        if self._dense_key == (model, seed):
            return super().dense(model, seed)
        # one trainer per model and machine: another worker waits, then loads the checkpoint
        with host_lock(f"train-{model}-{seed}"):
            return super().dense(model, seed)
