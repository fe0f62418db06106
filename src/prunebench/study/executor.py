"""Run a study's jobs in this process: prune, then the size, latency and profile jobs on each
pruned model, and the quantization controls; every result goes to the store in its own
transaction (see :mod:`.runner`). :mod:`.distributed` runs the same executor in Dask workers
with the store replaced by a list of records."""
from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import StoreError
from . import stages
from .display import Display
from .estimate import Estimator
from .interrupt import InterruptGuard
from .jobs import Job
from .locks import timing_lock
from .spec import Spec
from .store import Store


def skip_record(job: Job, reason: str, stage: str) -> dict:
    return {"job_hash": job.hash, "stage": stage, "kind": job.kind, "model": job.model,
            "method": job.method_label, "sparsity": job.sparsity, "format": job.format,
            "engine": job.engine, "batch": job.batch, "seed": job.seed, "reason": reason,
            "spec": job.key}


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
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= 400 else text[:397] + "..."



class Executor:
    def __init__(self, spec: Spec, store: Store, fp: dict, out: Path, display: "Display",
                 est: Estimator, all_jobs: list[Job], guard: InterruptGuard | None = None):
        self.spec, self.store, self.fp, self.out = spec, store, fp, out
        self.guard = guard or InterruptGuard()
        self.display, self.est = display, est
        self.prune_jobs = {j.hash: j for j in all_jobs if j.kind == "prune"}
        self.ran = 0
        self.stored = 0
        self.models_dir = out / "models"
        self.work = out / ".work"
        self._dense_key = None
        self._dense = None
        self._datasets: dict = {}
        self._held: dict | None = None  # the timing lock's window while a job holds it
        self._fastest: dict[tuple, tuple[str, Any]] = {}  # see _fastest_dense

    # -- bookkeeping -----------------------------------------------------------------------
    def _store(self, row: dict) -> None:
        self.guard.check()  # never a row from a job an interrupt hit
        row.setdefault("code_version", self.fp.get("git_commit"))
        with_lock(row, self._held)
        if self.store.add(row, self.fp) is not None:
            self.stored += 1
        if row.get("status") == "failed":
            self.display.fail()

    def _skip(self, job: Job, reason: str) -> None:
        self.guard.check()
        self.store.add_skipped([skip_record(job, reason, "runtime")], self.fp)

    def _begin(self, job: Job) -> None:
        self.guard.check()
        self.display.job(job.describe())

    def _end(self, job: Job) -> None:
        self.guard.check()
        self.ran += 1
        self.display.advance(self.est.job_s(job))

    # -- models ----------------------------------------------------------------------------
    def _stored_prune(self, pj: Job) -> tuple[str, str] | None:
        """('failed' | 'skipped', reason) when prune job ``pj`` is stored as failed or
        skipped on this machine; None when its model can be loaded or pruned again."""
        st = self.store.job_status(self.fp["id"]).get(pj.hash)
        if st == "failed":
            rows = self.store.rows_for_job(pj.hash, self.fp["id"])
            return "failed", f"its prune job failed: {rows[0]['reason'] if rows else '?'}"
        if st == "skipped-runtime" or pj.skip:
            rec = self.store.skipped_for_job(pj.hash, self.fp["id"])
            return "skipped", rec[0]["reason"] if rec else pj.skip
        return None

    def dense(self, model: str, seed: int):
        """(net, data, init_state) of the trained (or randomly initialised) dense model."""
        from .. import zoo

        if self._dense_key != (model, seed):
            self._dense = None  # free the previous model first
            spec = zoo.get_spec(model)
            train_s = self.est.train_s(model, seed)
            if train_s:
                self.display.job(f"train {model} seed {seed} (not cached, ~{train_s:.0f} s)")
            net, data, init = zoo.load(model, trained=spec.trained, seed=seed, return_init=True)
            self.display.advance(train_s, job=False)
            self._dense_key, self._dense = (model, seed), (net, data, init)
        return self._dense

    def pruned(self, pj: Job, run_prune: bool) -> tuple[str, Any]:
        """('ok', model) | ('failed', reason) | ('skipped', reason) for prune job ``pj``;
        runs it (and stores its row) when ``run_prune``."""
        if not run_prune:
            earlier = self._stored_prune(pj)
            if earlier is not None:
                return earlier
            cached = stages.load_pruned(self.models_dir / f"{pj.hash}.pbm")
            if cached is not None:
                return "ok", cached
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
            return "skipped", str(e)
        except (KeyboardInterrupt, SystemExit, StoreError):
            raise
        except Exception as e:  # noqa: BLE001 - stored as a failed row, the study goes on
            reason = failure_reason(e)
            if run_prune:
                self._store(stages.failed_row(pj, reason, {"elapsed_s": time.perf_counter() - t0}))
                self._end(pj)
            return "failed", f"its prune job failed: {reason}"
        try:  # the cache only saves re-pruning: a full disk must not fail the prune job
            self.models_dir.mkdir(parents=True, exist_ok=True)
            stages.cache_pruned(self.models_dir / f"{pj.hash}.pbm", model, pj)
        except OSError:
            pass
        if run_prune:
            self._store(row)
            self._end(pj)
        return "ok", model

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

    def run_group(self, pj: Job, deps: list[Job]) -> tuple[str, Any]:
        """Run the pending jobs ``deps`` of one pruned model: the prune job ``pj`` itself when
        it comes first, then the size/latency/profile jobs on its model. Returns the prune
        job's outcome as :meth:`pruned` gives it (what :mod:`.distributed` hands on)."""
        run_prune = bool(deps) and deps[0].hash == pj.hash
        others = deps[1:] if run_prune else deps
        state, value = self.pruned(pj, run_prune)
        if state != "ok":
            for j in others:
                self._begin(j)
                if state == "skipped":
                    self._skip(j, value)
                else:
                    self._store(stages.failed_row(j, value))
                self._end(j)
            return state, value
        self.run_dependents(value, others)
        return state, None

    def run_dependents(self, model, jobs: list[Job]) -> None:
        if not jobs:
            return
        data = self._data_of(jobs[0])
        self.work.mkdir(parents=True, exist_ok=True)
        accuracy_cache: dict = {}
        ref = Inputs(jobs[0].model, data, self.spec)
        compiled: dict[tuple, Any] = {}
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
                if row.get("status") == "ok":
                    row["extra"].setdefault("elapsed_s", time.perf_counter() - t0)
                self._store(row)
            except stages.Skip as e:
                self._skip(j, str(e))
            except (KeyboardInterrupt, SystemExit, StoreError):  # never a job's failure
                raise
            except Exception as e:  # noqa: BLE001
                self._store(stages.failed_row(j, failure_reason(e),
                                              {"elapsed_s": time.perf_counter() - t0}))
            self._end(j)
        compiled.clear()

    def _compile(self, j: Job, model, compiled: dict):
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

    def _data_of(self, j: Job):
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

    def _engine_compile(self, j: Job, model):
        """Compile with the job's format on the pruned layers only (the others stay dense):
        engines built on :mod:`prunebench.runtime` take the per-module plan; an engine that
        takes only a format name gets the name. The format is forced (``keep_smaller``
        False) so the job measures the format, not a planner's choice; a layer an engine
        cannot serve in it stays dense (``fallback="dense"``) and the row says how many did."""
        from .. import engines
        from ..errors import BadInputError

        torch.set_num_threads(j.threads)
        # engines that trace (onnxruntime) build at compile time with it, so that building is
        # counted as compiling, not as the first verified call
        example = stages.inputs(j.model, self._data_of(j), 1)
        if j.format == "dense":
            try:
                return engines.compile(model, j.engine, "dense", values=j.values,
                                       threads=j.threads, example_input=example)
            except BadInputError as e:
                raise stages.Skip(f"engine {j.engine}: {e}") from None
        opts = {k: tuple(v) if isinstance(v, list) else v
                for k, v in j.key.get("format_options", {}).items()}
        if j.format == "auto":  # planned for this engine, batch and thread count
            planned = stages.auto_plan(j, model, self._data_of(j), engine=j.engine,
                                       batch=j.batch, threads=j.threads, options=opts)
            fn = planned.compile(model)
            fn.auto_plan = stages.auto_summary(planned)
            return fn
        plan = {m: j.format for m in stages.selected_modules(model, j.plan.layers)}
        try:
            return engines.compile(model, j.engine, plan, values=j.values, threads=j.threads,
                                   keep_smaller=False, fallback="dense", example_input=example,
                                   **opts)
        except BadInputError as first:
            try:
                return engines.compile(model, j.engine, j.format, values=j.values,
                                       threads=j.threads, keep_smaller=False,
                                       example_input=example, **opts)
            except BadInputError as e:
                raise stages.Skip(f"engine {j.engine} with format {j.format}: {e}"
                                  + ("" if str(e) == str(first) else f" (with a per-layer "
                                     f"plan: {first})")) from None

    @contextlib.contextmanager
    def _timing(self):
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

    def latency(self, j: Job, model, data, ref: "Inputs", compiled: dict) -> dict:
        with self._timing() as held:
            row = self._latency(j, model, data, ref, compiled)
        return with_lock(row, held)

    def _latency(self, j: Job, model, data, ref: "Inputs", compiled: dict) -> dict:
        fn, compile_s = self._compile(j, model, compiled)
        x, y = ref.for_batch(j.batch)
        try:
            numbers = stages.verify(fn, model, x, y, j.values, j.batch)
        except stages.VerifyFailed as e:
            return stages.failed_row(j, f"verification: {e}", {"verify": e.numbers})
        xt = stages.inputs(j.model, data, j.batch)
        reference = self._reference(j, compiled)
        fastest_engine, fastest = self._fastest_dense(j, reference, xt)
        m, ref_m, fast_m = stages.time_call(fn, reference, xt, j.batch, j.threads,
                                            self.spec.measure, f"{j.model} {j.engine} {j.format}",
                                            fastest=fastest)
        return stages.latency_row(j, m, numbers, stages.beside(
            {"compile_s": compile_s, "latency_only": data is None,
             "plan": stages.plan_summary(fn, j.format)}, ref_m, fast_m, fastest_engine))

    def _fastest_dense(self, j: Job, reference, x) -> tuple[str, Any]:
        """(name, callable) of the fastest dense engine for the unpruned model of ``j`` among
        the dense fp32 engines its plan lists (dense PyTorch always among them), each verified
        and timed beside dense PyTorch once per model, seed, batch and threads; the callable
        is None when dense PyTorch itself is the fastest. Every latency job is then timed
        beside it, so the report's headline speedup is a ratio of one run."""
        from .. import engines
        from ..runtime.verify import verify

        key = (j.model, j.seed, j.batch, j.threads)
        if key in self._fastest:
            return self._fastest[key]
        for k in [k for k in self._fastest if k[:2] != key[:2]]:
            del self._fastest[k]  # compiled sessions of another model: free them
        plan = next((p for p in self.spec.models if p.name == j.model), None)
        listed = plan.engines if plan else ()
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
                run = engines.compile(net, name, "dense", values="fp32", threads=j.threads,
                                      example_input=x)
                verify(run, net, x)
                m, ref_m, _ = stages.time_call(run, reference, x, j.batch, j.threads, measure,
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

    def _reference(self, j: Job, compiled: dict):
        """The unpruned model of ``j`` on dense PyTorch (the report's baseline), compiled once
        per pruned model and thread count: every latency job times it beside its own callable."""
        from .. import engines

        key = ("reference", j.threads)
        if key not in compiled:
            net = self.dense(j.model, j.seed)[0]
            compiled[key] = engines.compile(net, "torch-dense", "dense", values="fp32",
                                            threads=j.threads)
        return compiled[key]

    def profile(self, j: Job, model, data, ref: "Inputs", compiled: dict) -> dict:
        with self._timing() as held:
            row = self._profile(j, model, data, ref, compiled)
        return with_lock(row, held)

    def _profile(self, j: Job, model, data, ref: "Inputs", compiled: dict) -> dict:
        fn, _ = self._compile(j, model, compiled)
        xv, yv = ref.for_batch(j.batch)
        try:  # a profile is a timing too: never of a model that computes the wrong thing
            stages.verify(fn, model, xv, yv, j.values, j.batch)
        except stages.VerifyFailed as e:
            return stages.failed_row(j, f"verification: {e}", {"verify": e.numbers})
        x = stages.inputs(j.model, data, j.batch)
        prof = stages.profile_layers(fn, x, j.threads, self.spec.measure)
        row = stages.failed_row(j, "")  # same identifying fields
        row.update(status="ok", reason=None, p50_ms=prof["total_ms"])
        row["extra"].update(profile=prof, latency_only=data is None)
        return row

    def run_quant(self, j: Job) -> None:
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
                x = stages.inputs(j.model, data, j.batch)
                reference = engines.compile(net, "torch-dense", "dense", values="fp32",
                                            threads=j.threads)
                m, ref_m, _ = stages.time_call(q, reference, x, j.batch, j.threads,
                                               self.spec.measure, f"{j.model} int8-dynamic")
                row = stages.latency_row(j, m, row["extra"]["verify"],
                                         stages.beside({"latency_only": False}, ref_m))
                row["extra"]["method_label"] = "int8-dynamic"
            row["extra"]["elapsed_s"] = time.perf_counter() - t0
            self._store(row)
        except (KeyboardInterrupt, SystemExit, StoreError):
            raise
        except stages.VerifyFailed as e:
            self._store(stages.failed_row(j, f"verification: {e}", {"verify": e.numbers}))
        except Exception as e:  # noqa: BLE001
            self._store(stages.failed_row(j, failure_reason(e),
                                          {"elapsed_s": time.perf_counter() - t0}))
        self._end(j)


def with_lock(row: dict, held: dict | None) -> dict:
    """``row`` with the timing lock's window in ``extra.timing_lock`` (when one was held); its
    ``elapsed_s`` (what later estimates learn from) is the job's own time, without the wait."""
    if held is not None:
        extra = row.setdefault("extra", {})
        extra["timing_lock"] = dict(held, released=time.time())
        extra.setdefault("elapsed_s", extra["timing_lock"]["released"] - held["acquired"])
    return row


class Inputs:
    """Verification inputs (and labels) of a model: ``verify.inputs`` test inputs, at least
    one full batch; 4 random inputs (or one batch) for latency-only models."""

    def __init__(self, name: str, data, spec: Spec):
        self.name, self.data = name, data
        n = spec.verify["inputs"]
        self.target = n if data is not None else min(n, 4)

    def for_batch(self, batch: int):
        n = max(batch, self.target)
        x = stages.inputs(self.name, self.data, n)
        y = None
        if self.data is not None and len(self.data.y_test) >= n:
            y = self.data.y_test[:n]
        return x, y
