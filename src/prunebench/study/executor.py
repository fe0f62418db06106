"""Run a study's jobs in this process: prune, then the size, latency and profile jobs on each
pruned model, and the quantization controls; every result goes to the store in its own
transaction (see :mod:`.runner`). :mod:`.distributed` runs the same executor in Dask workers
with the store replaced by a list of records."""
from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from ..errors import StoreError
from . import stages
from .display import Display
from .estimate import JobCosts
from .interrupt import InterruptGuard
from .jobs import Job
from .locks import timing_lock
from .rows import JobStatus, ResultRow, SkipRecord, failed_row, failure_reason
from .spec import Spec
from .store import Store

if TYPE_CHECKING:
    from ..zoo.datasets import Dataset

#: (net, data, init_state) of a dense model: its dataset is None for a latency-only model
Dense = tuple[nn.Module, "Dataset | None", "dict[str, Any] | None"]
#: a prune job's outcome: (OK, the pruned model) or (FAILED | SKIPPED, the reason)
Outcome = tuple[JobStatus, "nn.Module | str"]


class Executor:
    """Runs jobs in this process and stores each result in ``store`` (None: a subclass keeps
    the records instead, see :mod:`.distributed`)."""

    def __init__(self, spec: Spec, store: Store | None, fp: dict[str, Any], out: Path,
                 display: Display, est: JobCosts, all_jobs: list[Job],
                 guard: InterruptGuard | None = None):
        self.spec, self.store, self.fp, self.out = spec, store, fp, out
        self.guard = guard or InterruptGuard()
        self.display, self.est = display, est
        self.prune_jobs = {j.hash: j for j in all_jobs if j.kind == "prune"}
        self.ran = 0
        self.stored = 0
        self.models_dir = out / "models"
        self.work = out / ".work"
        self._dense_key: tuple[str, int] | None = None
        self._dense: Dense | None = None
        self._datasets: dict[str, Dataset] = {}
        self._held: dict[str, Any] | None = None  # the timing lock's window while a job holds it
        self._fastest: dict[tuple[Any, ...], tuple[str, Any]] = {}  # see _fastest_dense

    # -- bookkeeping -----------------------------------------------------------------------
    @property
    def db(self) -> Store:
        if self.store is None:
            raise RuntimeError("this executor has no database (it keeps records instead)")
        return self.store

    def _store(self, row: ResultRow) -> None:
        self.guard.check()  # never a row from a job an interrupt hit
        if row.code_version is None:
            row.code_version = self.fp.get("git_commit")
        with_lock(row, self._held)
        if self.db.add(row.as_dict(), self.fp) is not None:
            self.stored += 1
        if row.failed:
            self.display.fail()

    def _skip(self, job: Job, reason: str) -> None:
        self.guard.check()
        self.db.add_skipped([SkipRecord.of(job, reason, "runtime").as_dict()], self.fp)

    def _begin(self, job: Job) -> None:
        self.guard.check()
        self.display.job(job.describe())

    def _end(self, job: Job) -> None:
        self.guard.check()
        self.ran += 1
        self.display.advance(self.est.job_s(job))

    # -- models ----------------------------------------------------------------------------
    def _stored_prune(self, pj: Job) -> tuple[str, str | None] | None:
        """('failed' | 'skipped', reason) when prune job ``pj`` is stored as failed or
        skipped on this machine; None when its model can be loaded or pruned again."""
        if self.store is None:  # overridden where there is no database
            raise RuntimeError("this executor has no database to ask")
        st = self.store.job_status(self.fp["id"]).get(pj.hash)
        if st == "failed":
            rows = self.store.rows_for_job(pj.hash, self.fp["id"])
            return "failed", f"its prune job failed: {rows[0]['reason'] if rows else '?'}"
        if st == "skipped-runtime" or pj.skip:
            rec = self.store.skipped_for_job(pj.hash, self.fp["id"])
            return "skipped", rec[0]["reason"] if rec else pj.skip
        return None

    def dense(self, model: str, seed: int) -> Dense:
        """(net, data, init_state) of the trained (or randomly initialised) dense model."""
        from .. import zoo

        if self._dense_key != (model, seed) or self._dense is None:
            self._dense = None  # free the previous model first
            spec = zoo.get_spec(model)
            train_s = self.est.train_s(model, seed)
            if train_s:
                self.display.job(f"train {model} seed {seed} (not cached, ~{train_s:.0f} s)")
            net, data, init = zoo.load(model, trained=spec.trained, seed=seed, return_init=True)
            self.display.advance(train_s, job=False)
            self._dense_key, self._dense = (model, seed), (net, data, init)
        return self._dense

    def pruned(self, pj: Job, run_prune: bool) -> Outcome:
        """(OK, model) | (FAILED, reason) | (SKIPPED, reason) for prune job ``pj``; runs it
        (and stores its row) when ``run_prune``."""
        if not run_prune:
            earlier = self._stored_prune(pj)
            if earlier is not None:
                state, reason = earlier
                return JobStatus(state), reason if reason is not None else "?"
            cached = stages.load_pruned(self.models_dir / f"{pj.hash}.pbm")
            if cached is not None:
                return JobStatus.OK, cached
        net, data, init = self.dense(pj.model, pj.seed)
        if run_prune:
            self._begin(pj)
        t0 = time.perf_counter()
        try:
            model, row = stages.prune_job(pj, net, data, init)
        except stages.Skip as e:
            if run_prune:
                self._skip(pj, str(e))
                self._end(pj)
            return JobStatus.SKIPPED, str(e)
        except (KeyboardInterrupt, SystemExit, StoreError):
            raise
        except Exception as e:  # noqa: BLE001 - stored as a failed row, the study goes on
            reason = failure_reason(e)
            if run_prune:
                self._store(failed_row(pj, reason, {"elapsed_s": time.perf_counter() - t0}))
                self._end(pj)
            return JobStatus.FAILED, f"its prune job failed: {reason}"
        try:  # the cache only saves re-pruning: a full disk must not fail the prune job
            self.models_dir.mkdir(parents=True, exist_ok=True)
            stages.cache_pruned(self.models_dir / f"{pj.hash}.pbm", model, pj)
        except OSError:
            pass
        if run_prune:
            self._store(row)
            self._end(pj)
        return JobStatus.OK, model

    # -- the loop --------------------------------------------------------------------------
    def run(self, pending: list[Job]) -> None:
        self.pretrain(pending)
        quant = [j for j in pending if j.kind in ("quant", "quant-latency")]
        rest = [j for j in pending if j.kind not in ("quant", "quant-latency")]
        for _, group in itertools.groupby(rest, key=lambda j: (j.model, j.seed)):
            for ph, deps in itertools.groupby(group, key=lambda j: j.prune or j.hash):
                self.run_group(self.prune_jobs[ph], list(deps))
        for j in quant:
            self.run_quant(j)

    def pretrain(self, pending: list[Job]) -> None:
        """Train the missing dense checkpoints of the pending jobs two at a time (this
        process and a child; :mod:`prunebench.zoo.pretrain`) before anything is timed: a
        cold study otherwise trains them one by one with a core idle."""
        from ..zoo.pretrain import missing, train_missing

        pairs = [(j.model, j.seed) for j in pending
                 if j.kind in ("prune", "quant", "quant-latency")]
        todo = missing(pairs)
        if len(todo) < 2:
            return
        cost = {p: self.est.train_s(*p) for p in todo}
        self.display.job(f"train {len(todo)} models (not cached; two at a time)")
        train_missing(todo, cost=lambda *p: cost[p],
                      on_trained=lambda *p: self.display.advance(cost[p], job=False),
                      registers=["prunebench.study.controls"])  # the matched controls
        self.guard.check()

    def run_group(self, pj: Job, deps: list[Job]) -> tuple[JobStatus, str | None]:
        """Run the pending jobs ``deps`` of one pruned model: the prune job ``pj`` itself when
        it comes first, then the size/latency/profile jobs on its model. Returns the prune
        job's outcome as :meth:`pruned` gives it, without the model (what
        :mod:`.distributed` hands on)."""
        run_prune = bool(deps) and deps[0].hash == pj.hash
        others = deps[1:] if run_prune else deps
        state, value = self.pruned(pj, run_prune)
        if isinstance(value, nn.Module):  # state OK
            self.run_dependents(value, others)
            return state, None
        for j in others:
            self._begin(j)
            if state == JobStatus.SKIPPED:
                self._skip(j, value)
            else:
                self._store(failed_row(j, value))
            self._end(j)
        return state, value

    def run_dependents(self, model: nn.Module, jobs: list[Job]) -> None:
        """Run the size, latency and profile ``jobs`` on the pruned ``model``.

        Every weight matrix is encoded once per format for all of them
        (:func:`~prunebench.runtime.compile.encoding_memo`): the engines built on the runtime
        and the planner's ``auto`` plans of each batch size reuse one another's encodings of
        this model, which never changes while its jobs run."""
        from ..runtime.compile import encoding_memo

        if not jobs:
            return
        with encoding_memo():
            self._run_dependents(model, jobs)

    def _run_dependents(self, model: nn.Module, jobs: list[Job]) -> None:
        data = self._data_of(jobs[0])
        self.work.mkdir(parents=True, exist_ok=True)
        accuracy_cache: dict[str, tuple[float, float]] = {}
        ref = stages.Inputs(jobs[0].model, data, self.spec)
        compiled: dict[tuple[Any, ...], Any] = {}
        for j in jobs:
            self._begin(j)
            t0 = time.perf_counter()
            try:
                if j.kind == "size":
                    opts = j.key["format_options"]
                    row = stages.size_job(j, model, data, self.work, opts, accuracy_cache)
                elif j.kind == "latency":
                    row = self.latency(j, model, data, ref, compiled)
                else:
                    row = self.profile(j, model, data, ref, compiled)
                if row.status == JobStatus.OK:
                    row.extra.setdefault("elapsed_s", time.perf_counter() - t0)
                self._store(row)
            except stages.Skip as e:
                self._skip(j, str(e))
            except (KeyboardInterrupt, SystemExit, StoreError):  # never a job's failure
                raise
            except Exception as e:  # noqa: BLE001
                self._store(failed_row(j, failure_reason(e),
                                       {"elapsed_s": time.perf_counter() - t0}))
            self._end(j)
        compiled.clear()

    def _compile(self, j: Job, model: nn.Module,
                 compiled: dict[tuple[Any, ...], Any]) -> tuple[Callable[..., Any], float]:
        """The engine's callable for ``j`` (cached per engine, format, values and threads for
        the current pruned model), and the seconds compiling took."""
        # an auto plan is made for one batch size; single formats compile the same for any
        key = (j.engine, j.format, j.values, j.threads, j.batch if j.format == "auto" else None)
        if key not in compiled:
            t0 = time.perf_counter()
            try:
                fn = self._engine_compile(j, model)
                compiled[key] = ("ok", fn, time.perf_counter() - t0)
            except stages.Skip as e:
                compiled[key] = ("skip", str(e), 0.0)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # noqa: BLE001
                compiled[key] = ("failed", f"compile: {failure_reason(e)}", 0.0)
        state, value, seconds = compiled[key]
        if state == "skip":
            raise stages.Skip(value)
        if state == "failed":
            raise RuntimeError(value)
        return value, seconds

    def _data_of(self, j: Job) -> Dataset | None:
        """The dataset of ``j``'s model, or None for a latency-only model (datasets are
        loaded once; a resumed study with cached pruned models never loads the dense one)."""
        from .. import zoo

        name = zoo.get_spec(j.model).dataset
        if name is None:
            return None
        if name not in self._datasets:
            if self._dense is not None and self._dense[1] is not None \
                    and self._dense[1].name == name:
                self._datasets[name] = self._dense[1]
            else:
                self._datasets[name] = zoo.load_dataset(name)
        return self._datasets[name]

    def _engine_compile(self, j: Job, model: nn.Module) -> Callable[..., Any]:
        """Compile with the job's format on the pruned layers only (the others stay dense):
        engines built on :mod:`prunebench.runtime` take the per-module plan; an engine that
        takes only a format name gets the name. The format is forced (``keep_smaller``
        False) so the job measures the format, not a planner's choice; a layer an engine
        cannot serve in it stays dense (``fallback="dense"``) and the row says how many did."""
        from .. import engines
        from ..errors import BadInputError

        t = j.timed()
        torch.set_num_threads(t.threads)
        # engines that trace (onnxruntime) build at compile time with it, so that building is
        # counted as compiling, not as the first verified call
        example = stages.inputs(j.model, self._data_of(j), 1)
        if t.format == "dense":
            try:
                return engines.compile(model, t.engine, "dense", values=t.values,
                                       threads=t.threads, example_input=example)
            except BadInputError as e:
                raise stages.Skip(f"engine {t.engine}: {e}") from None
        opts = {k: tuple(v) if isinstance(v, list) else v
                for k, v in j.key.get("format_options", {}).items()}
        if t.format == "auto":  # planned for this engine, batch and thread count
            planned = stages.auto_plan(j, model, self._data_of(j), engine=t.engine,
                                       batch=t.batch, threads=t.threads, options=opts)
            fn = planned.compile(model)
            fn.auto_plan = stages.auto_summary(planned)
            return fn
        plan = {m: t.format for m in stages.selected_modules(model, j.plan.layers)}
        try:
            return engines.compile(model, t.engine, plan, values=t.values, threads=t.threads,
                                   keep_smaller=False, fallback="dense", example_input=example,
                                   **opts)
        except BadInputError as first:
            try:
                return engines.compile(model, t.engine, t.format, values=t.values,
                                       threads=t.threads, keep_smaller=False,
                                       example_input=example, **opts)
            except BadInputError as e:
                raise stages.Skip(f"engine {t.engine} with format {t.format}: {e}"
                                  + ("" if str(e) == str(first) else f" (with a per-layer "
                                     f"plan: {first})")) from None

    @contextlib.contextmanager
    def _timing(self) -> Iterator[dict[str, Any]]:
        """Hold this machine's timing lock (:func:`.locks.timing_lock`) while a job
        compiles, plans and times, so two studies on one machine (local or Dask workers)
        never time at the same moment; yields the lock's window, also kept in ``_held`` for
        rows stored inside it."""
        # per physical machine: the edge run profile is another machine id on the same cores
        with timing_lock(self.fp.get("host_id", self.fp["id"])) as held:
            self._held = held
            try:
                yield held
            finally:
                self._held = None

    def latency(self, j: Job, model: nn.Module, data: Dataset | None, ref: stages.Inputs,
                compiled: dict[tuple[Any, ...], Any]) -> ResultRow:
        """Verify, then time latency job ``j`` on the pruned ``model`` (under the timing
        lock)."""
        with self._timing() as held:
            row = self._latency(j, model, data, ref, compiled)
        return with_lock(row, held)

    def _latency(self, j: Job, model: nn.Module, data: Dataset | None, ref: stages.Inputs,
                 compiled: dict[tuple[Any, ...], Any]) -> ResultRow:
        t = j.timed()
        fn, compile_s = self._compile(j, model, compiled)
        x, y = ref.for_batch(t.batch)
        try:
            numbers = stages.verify(fn, model, x, y, t.values, t.batch)
        except stages.VerifyFailed as e:
            return failed_row(j, f"verification: {e}", {"verify": e.numbers})
        xt = stages.inputs(j.model, data, t.batch)
        reference = self._reference(j, compiled)
        fastest_engine, fastest = self._fastest_dense(j, reference, xt)
        m, ref_m, fast_m = stages.time_call(fn, reference, xt, t.batch, t.threads,
                                            self.spec.measure, f"{j.model} {t.engine} {t.format}",
                                            fastest=fastest)
        return stages.latency_row(j, m, numbers, stages.beside(
            {"compile_s": compile_s, "latency_only": data is None,
             "plan": stages.plan_summary(fn, t.format)}, ref_m, fast_m, fastest_engine))

    def _fastest_dense(self, j: Job, reference: Callable[..., Any],
                       x: torch.Tensor) -> tuple[str, Any]:
        """(name, callable) of the fastest dense engine for the unpruned model of ``j`` among
        the dense fp32 engines its plan lists (dense PyTorch always among them), each verified
        and timed beside dense PyTorch once per model, seed, batch and threads; the callable
        is None when dense PyTorch itself is the fastest. Every latency job is then timed
        beside it, so the report's headline speedup is a ratio of one run."""
        from .. import engines
        from ..runtime.verify import verify

        threads = j.timed().threads
        key = (j.model, j.seed, j.batch, threads)
        if key in self._fastest:
            return self._fastest[key]
        for k in [k for k in self._fastest if k[:2] != key[:2]]:
            del self._fastest[k]  # compiled sessions of another model: free them
        plan = next((p for p in self.spec.models if p.name == j.model), None)
        listed: Sequence[str] = plan.engines if plan else ()
        listed = engines.ENGINES.names() if "all" in listed else listed
        names = [e for e in listed if e != "torch-dense" and e in engines.ENGINES.names()
                 and engines.ENGINES.get(e).supports("dense")
                 and "fp32" in engines.ENGINES.get(e).values]
        net = self.dense(j.model, j.seed)[0]
        best: tuple[str, Any] = ("torch-dense", None)
        best_ratio = 1.0
        measure = dict(self.spec.measure, min_time=max(self.spec.measure["min_time"], 0.2))
        for name in names:
            try:
                run = engines.compile(net, name, "dense", values="fp32", threads=threads,
                                      example_input=x)
                verify(run, net, x)
                m, ref_m, _ = stages.time_call(run, reference, x, j.timed().batch, threads,
                                               measure,
                                               f"{j.model} {name} dense (fastest?)")
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception:  # noqa: BLE001 - an engine that cannot run it is not a candidate
                continue
            ratio = ref_m.median / m.median
            if ratio > best_ratio:
                best, best_ratio = (name, run), ratio
        self._fastest[key] = best
        return best

    def _reference(self, j: Job, compiled: dict[tuple[Any, ...], Any]) -> Callable[..., Any]:
        """The unpruned model of ``j`` on dense PyTorch (the report's baseline), compiled once
        per pruned model and thread count: every latency job times it beside its own callable."""
        from .. import engines

        key = ("reference", j.threads)
        if key not in compiled:
            net = self.dense(j.model, j.seed)[0]
            compiled[key] = engines.compile(net, "torch-dense", "dense", values="fp32",
                                            threads=j.timed().threads)
        return compiled[key]

    def profile(self, j: Job, model: nn.Module, data: Dataset | None, ref: stages.Inputs,
                compiled: dict[tuple[Any, ...], Any]) -> ResultRow:
        """Verify, then time each layer of profile job ``j`` (under the timing lock)."""
        with self._timing() as held:
            row = self._profile(j, model, data, ref, compiled)
        return with_lock(row, held)

    def _profile(self, j: Job, model: nn.Module, data: Dataset | None, ref: stages.Inputs,
                 compiled: dict[tuple[Any, ...], Any]) -> ResultRow:
        t = j.timed()
        fn, _ = self._compile(j, model, compiled)
        xv, yv = ref.for_batch(t.batch)
        try:  # a profile is a timing too: never of a model that computes the wrong thing
            stages.verify(fn, model, xv, yv, t.values, t.batch)
        except stages.VerifyFailed as e:
            return failed_row(j, f"verification: {e}", {"verify": e.numbers})
        x = stages.inputs(j.model, data, t.batch)
        prof = stages.profile_layers(fn, x, t.threads, self.spec.measure)
        return ResultRow.of(j, JobStatus.OK, p50_ms=prof["total_ms"],
                            extra={"method_label": j.method_label, "profile": prof,
                                   "latency_only": data is None})

    def run_quant(self, j: Job) -> None:
        """Run quantization control ``j`` (a quant-latency job under the timing lock)."""
        if j.kind != "quant-latency":
            return self._run_quant(j)
        with self._timing():
            self._run_quant(j)

    def _run_quant(self, j: Job) -> None:
        from .. import engines

        self._begin(j)
        t0 = time.perf_counter()
        try:
            net, data, _ = self.dense(j.model, j.seed)
            q, row = stages.quant_job(j, net, data)
            if j.kind == "quant-latency":
                t = j.timed()
                x = stages.inputs(j.model, data, t.batch)
                reference = engines.compile(net, "torch-dense", "dense", values="fp32",
                                            threads=t.threads)
                m, ref_m, _ = stages.time_call(q, reference, x, t.batch, t.threads,
                                               self.spec.measure, f"{j.model} int8-dynamic")
                row = stages.latency_row(j, m, row.extra["verify"],
                                         stages.beside({"latency_only": False}, ref_m))
                row.extra["method_label"] = "int8-dynamic"
            row.extra["elapsed_s"] = time.perf_counter() - t0
            self._store(row)
        except (KeyboardInterrupt, SystemExit, StoreError):
            raise
        except stages.VerifyFailed as e:
            self._store(failed_row(j, f"verification: {e}", {"verify": e.numbers}))
        except Exception as e:  # noqa: BLE001
            self._store(failed_row(j, failure_reason(e),
                                   {"elapsed_s": time.perf_counter() - t0}))
        self._end(j)


def with_lock(row: ResultRow, held: dict[str, Any] | None) -> ResultRow:
    """``row`` with the timing lock's window in ``extra.timing_lock`` (when one was held); its
    ``elapsed_s`` (what later estimates learn from) is the job's own time, without the wait."""
    if held is not None:
        extra = row.extra
        # "released" is the lock's own stamp once it is dropped; a row stored inside the window
        # gets the time it was stored
        extra["timing_lock"] = lock = dict(held)
        lock.setdefault("released", time.time())
        extra.setdefault("elapsed_s", extra["timing_lock"]["released"] - held["acquired"])
    return row
