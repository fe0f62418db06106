"""Expansion of a :class:`~.spec.Spec` into jobs, each keyed by a hash of its settings.

Job kinds, and what each measures
---------------------------------
``prune``
    (model, method, sparsity, seed): prune and fine-tune the trained dense model; accuracy
    before and after fine-tuning, per-layer sparsity, downsampled masks (first seed).
    Sparsity 0 is the dense model itself (method ``dense``).
``size``
    (pruned model, format, value encoding): bytes of the compressed model file, and the test
    accuracy of the model loaded back from it. Every format on the first seed; on the other
    seeds only ``dense`` (the accuracy of each value encoding, which does not depend on the
    layout of lossless formats).
``latency``
    (pruned model, engine, format, value encoding, batch, threads), first seed only: outputs
    verified against the dense fp32 reference, then timed. A failed verification is stored as
    a failed row and never timed.
``profile``
    the per-layer time breakdown of one pruned model (spec ``profile``) on each engine/format.
``quant`` / ``quant-latency``
    the int8 dynamic-quantization control: accuracy and file bytes per seed; latency per
    batch and thread count on the first seed.

A job's key holds everything that determines its result (the model's checkpoint key, so a
retrained model is a new job; the timer settings for timed jobs) and nothing that does not
(the study's name, the code version), so two studies share the jobs they have in common.
Jobs that make no sense are *skipped* with a reason instead of run: an engine that cannot run
a format, the N:M format on weights that are not N:M, channel pruning of RNN hidden units.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..benchmark import job_hash
from ..formats import FORMATS
from .spec import Method, ModelPlan, Spec

KINDS = ("prune", "size", "latency", "profile", "quant", "quant-latency")


class Timed(NamedTuple):
    """What a job timed on an engine runs: engine, format, value encoding, batch, threads."""

    engine: str
    format: str
    values: str
    batch: int
    threads: int


@dataclass
class Job:
    kind: str
    key: dict[str, Any]
    model: str
    seed: int
    method: Method | None = None          # None: the dense model
    sparsity: float = 0.0
    prune: str | None = None              # hash of the prune job whose model this one uses
    format: str | None = None
    values: str | None = None
    engine: str | None = None
    batch: int | None = None
    threads: int | None = None
    skip: str | None = None               # reason, for a statically skipped job
    plan: ModelPlan = field(kw_only=True, repr=False)  # the model's grid the job comes from
    hash: str = ""

    def __post_init__(self) -> None:
        self.hash = job_hash(self.key)

    def encoding(self) -> tuple[str, str]:
        """(format, value encoding) of a job that stores or runs weights in a format (size,
        latency, profile, quant); ValueError for a prune job."""
        if self.format is None or self.values is None:
            raise ValueError(f"a {self.kind} job has no format (job {self.hash})")
        return self.format, self.values

    def timed(self) -> Timed:
        """What a job timed on an engine (latency, profile, quant-latency) runs; ValueError
        for a job of another kind."""
        fmt, values = self.encoding()
        if self.engine is None or self.batch is None or self.threads is None:
            raise ValueError(f"a {self.kind} job is not timed on an engine (job {self.hash})")
        return Timed(self.engine, fmt, values, self.batch, self.threads)

    @property
    def method_label(self) -> str:
        return self.method.label if self.method is not None else "dense"

    def describe(self) -> str:
        """One line for the progress display."""
        parts = [self.kind, self.model]
        if self.kind in ("prune", "size", "latency", "profile"):
            parts.append(self.method_label if self.method is None
                         else f"{self.method_label}@{self.sparsity:g}")
        if self.kind != "prune" and self.engine:
            parts.append(self.engine)
        if self.format:
            parts.append(f"{self.format}/{self.values}")
        if self.batch:
            parts.append(f"b{self.batch}")
        if self.kind in ("prune", "quant"):
            parts.append(f"seed {self.seed}")
        return " ".join(parts)


def model_rev(name: str, seed: int) -> str:
    """What identifies the dense weights a job starts from."""
    from .. import zoo

    spec = zoo.get_spec(name)
    if spec.trained:
        return zoo.models.checkpoint_key(spec, seed)
    import torch

    return f"init-r{spec.revision}-torch{torch.__version__.split('+')[0]}"


def resolve_engines(names: tuple[str, ...]) -> list[str]:
    from ..engines import ENGINES

    if "all" in names:
        return list(ENGINES.names())
    return list(names)


def format_options(fmt: str, method: Method | None, spec: Spec) -> dict:
    """Options for encoding ``fmt``: the spec's, with a block or N:M method's own pattern."""
    if fmt == "auto":  # the planner's candidates whose options take the method's pattern
        opts = {k: v for f in FORMATS if FORMATS.get(f).pattern
                for k, v in format_options(f, method, spec).items()}
        return opts
    cls = FORMATS.get(fmt) if fmt in FORMATS else None
    opts = dict(spec.format_options.get(fmt, {}))
    if method is not None and cls is not None and method.name == cls.pattern:
        opts.update({k: list(v) if isinstance(v, tuple) else v
                     for k in cls.pattern_keys for v in (getattr(method, k),)})
    return opts if cls is not None and cls.option_defaults else {}


def _format_skip(fmt: str, method: Method | None) -> str | None:
    cls = FORMATS.get(fmt) if fmt in FORMATS else None
    if cls is not None and cls.pattern_only and (method is None or method.name != cls.pattern):
        return (f"format {fmt} stores {cls.pattern_label} only; method "
                f"{method.label if method else 'dense'} does not leave one")
    return None


def _rnn_selected(name: str, layers: str) -> bool:
    from .. import zoo
    from ..pruning import prunable_layers, select_layers
    from ..pruning.targets import RNN_TYPES

    net = zoo.get_spec(name).build()
    chosen = select_layers(net, None) if layers == "default" else prunable_layers(net)
    return any(isinstance(net.get_submodule(n), RNN_TYPES) for n in chosen)


def finetune_key(plan: ModelPlan) -> dict[str, Any]:
    """The fine-tuning recipe of ``plan``'s prune jobs with every default filled in (the
    model's own learning rate and batch size): part of the job's hash, and what
    ``stages.prune_job`` passes to ``prune()``."""
    from .. import zoo
    from ..train import Finetune

    d = dict(plan.finetune)
    lr, batch = zoo.finetune_defaults(plan.name)
    f = Finetune(lr=d.get("lr", lr), batch_size=d.get("batch", batch), epochs=d.get("epochs"),
                 lr_schedule=d.get("schedule", "constant"),
                 early_stop=d.get("early_stop", True),
                 validation=d.get("validation", Finetune.validation))
    key = f.key()
    del key["steps"]  # the job's finetune_steps
    return key


def expand(spec: Spec) -> list[Job]:
    """Every job of the study, in the order the runner runs them (grouped by pruned model)."""
    from ..engines import ENGINES

    jobs: list[Job] = []
    for plan in spec.models:
        engines = resolve_engines(plan.engines)
        rnn = None
        from .. import zoo

        # a latency-only model has no accuracy to average: its first seed says it all
        seeds = plan.seeds if zoo.get_spec(plan.name).trained else plan.seeds[:1]
        for seed in seeds:
            rev = model_rev(plan.name, seed)
            first = seed == seeds[0]
            configs: list[tuple[Method | None, float]] = [(None, 0.0)]
            for m in plan.methods:
                fixed = m.fixed_sparsity
                configs += [(m, fixed)] if fixed is not None else [(m, s) for s in plan.sparsities]
            trained = zoo.get_spec(plan.name).trained
            for method, sparsity in configs:
                steps = plan.finetune_steps if (method is not None and trained) else 0
                pkey: dict[str, Any] = {"kind": "prune", "model": plan.name, "model_rev": rev,
                        "method": method.key() if method else {"name": "dense"},
                        "sparsity": sparsity, "seed": seed, "finetune_steps": steps,
                        "layers": plan.layers}
                if steps:
                    pkey["finetune"] = finetune_key(plan)
                pj = Job("prune", pkey, plan.name, seed, method, sparsity, plan=plan)
                if method is not None and method.name == "channel":
                    if rnn is None:
                        rnn = _rnn_selected(plan.name, plan.layers)
                    if rnn:
                        pj.skip = ("channel pruning cannot remove RNN hidden units "
                                   "(torch-pruning has no GRU/RNN handler)")
                jobs.append(pj)
                formats = [f for f in plan.formats
                           if method is None or method.formats is None or f in method.formats]
                size_formats = formats if first else (["dense"] if trained else [])
                for fmt in size_formats:
                    for values in plan.values:
                        opts = format_options(fmt, method, spec)
                        key: dict[str, Any] = {"kind": "size", "prune": pj.hash, "format": fmt,
                               "format_options": opts, "values": values}
                        j = Job("size", key, plan.name, seed, method, sparsity, pj.hash, fmt,
                                values, plan=plan)
                        j.skip = pj.skip or _format_skip(fmt, method)
                        jobs.append(j)
                timed = first and (method is None or method.time)
                for engine in (engines if timed else []):
                    for fmt in formats:
                        for values in plan.timed_values:
                            for batch in plan.batches:
                                for threads in plan.threads:
                                    key = {"kind": "latency", "prune": pj.hash, "engine": engine,
                                           "format": fmt, "values": values, "batch": batch,
                                           "format_options": format_options(fmt, method, spec),
                                           "threads": threads, "measure": spec.measure,
                                           "verify": spec.verify}
                                    j = Job("latency", key, plan.name, seed, method, sparsity,
                                            pj.hash, fmt, values, engine, batch, threads,
                                            plan=plan)
                                    j.skip = pj.skip or _engine_skip(ENGINES, engine, fmt,
                                                                     values) \
                                        or _format_skip(fmt, method) \
                                        or _dense_skip(fmt, method)
                                    jobs.append(j)
                prof = spec.profile
                if (first and prof and method is not None and method.label == prof["method"]
                        and abs(sparsity - prof["sparsity"]) < 1e-9):
                    for engine in engines:
                        for fmt in formats:
                            key = {"kind": "profile", "prune": pj.hash, "engine": engine,
                                   "format": fmt, "values": "fp32", "batch": prof["batch"],
                                   "format_options": format_options(fmt, method, spec),
                                   "threads": plan.threads[0], "measure": spec.measure}
                            j = Job("profile", key, plan.name, seed, method, sparsity, pj.hash,
                                    fmt, "fp32", engine, prof["batch"], plan.threads[0],
                                    plan=plan)
                            j.skip = pj.skip or _engine_skip(ENGINES, engine, fmt, "fp32") \
                                or _format_skip(fmt, method)
                            jobs.append(j)
        if plan.name in spec.quantized:
            for seed in plan.seeds:
                rev = model_rev(plan.name, seed)
                key = {"kind": "quant", "model": plan.name, "model_rev": rev, "seed": seed,
                       "scheme": "dynamic-int8", "verify": spec.verify}
                jobs.append(Job("quant", key, plan.name, seed, None, 0.0, format="dense",
                                values="int8", engine="torch-quant", plan=plan))
            seed = plan.seeds[0]
            for batch in plan.batches:
                for threads in plan.threads:
                    key = {"kind": "quant-latency", "model": plan.name,
                           "model_rev": model_rev(plan.name, seed), "seed": seed,
                           "scheme": "dynamic-int8", "batch": batch, "threads": threads,
                           "measure": spec.measure}
                    jobs.append(Job("quant-latency", key, plan.name, seed, None, 0.0,
                                    format="dense", values="int8", engine="torch-quant",
                                    batch=batch, threads=threads, plan=plan))
    return jobs


def count_jobs(spec: Spec) -> dict[str, int]:
    """{kind: jobs} that :func:`expand` yields (before duplicates are dropped), counted by
    arithmetic over the grid, without making a Job: what ``study --dry-run`` reports for a
    grid too large to expand (``tests/study`` checks it equals ``len(expand(spec))``)."""
    from .. import zoo

    counts = {k: 0 for k in ("prune", "size", "latency", "profile", "quant", "quant-latency")}
    prof = spec.profile
    for plan in spec.models:
        n_engines = len(resolve_engines(plan.engines))
        trained = zoo.get_spec(plan.name).trained
        seeds = plan.seeds if trained else plan.seeds[:1]
        for i, _ in enumerate(seeds):
            first = i == 0
            for method in [None, *plan.methods]:
                if method is None:
                    sparsities = [0.0]
                elif method.fixed_sparsity is not None:
                    sparsities = [method.fixed_sparsity]
                else:
                    sparsities = list(plan.sparsities)
                formats = [f for f in plan.formats
                           if method is None or method.formats is None or f in method.formats]
                n_size = len(formats if first else (["dense"] if trained else []))
                timed = first and (method is None or method.time)
                n_lat = (n_engines * len(formats) * len(plan.timed_values) * len(plan.batches)
                         * len(plan.threads)) if timed else 0
                counts["prune"] += len(sparsities)
                counts["size"] += len(sparsities) * n_size * len(plan.values)
                counts["latency"] += len(sparsities) * n_lat
                if first and prof and method is not None and method.label == prof["method"]:
                    hits = sum(abs(sp - prof["sparsity"]) < 1e-9 for sp in sparsities)
                    counts["profile"] += hits * n_engines * len(formats)
        if plan.name in spec.quantized:
            counts["quant"] += len(plan.seeds)
            counts["quant-latency"] += len(plan.batches) * len(plan.threads)
    return counts


def _dense_skip(fmt: str, method: Method | None) -> str | None:
    """Dense kernels multiply every weight, zero or not: a masked model's dense latency is the
    unpruned model's, which is measured. Channel pruning is the exception (it removes weights,
    so the dense model is smaller)."""
    if fmt == "dense" and method is not None and method.name != "channel":
        return ("dense latency does not depend on how many weights are zero (dense kernels "
                "multiply them all); the unpruned model's is the baseline")
    return None


def _engine_skip(engines, engine: str, fmt: str, values: str) -> str | None:
    eng = engines.get(engine)
    if fmt == "auto":
        # planning measures every candidate format of every layer: in a study, once per
        # pruned model and batch, for our kernels (`prunebench plan --engine` plans others)
        if engine != "native":
            return (f"format auto (the per-layer planner) is planned for engine native in "
                    f"studies; engine {engine} runs single formats")
    elif not eng.supports(fmt):
        runs = ", ".join(getattr(eng, "formats", ())) or "?"
        return f"engine {engine} cannot run format {fmt} (it runs: {runs})"
    runs_values = getattr(eng, "values", ("fp32",))
    if values not in runs_values:
        return (f"engine {engine} cannot run {values} values (it runs: "
                f"{', '.join(runs_values)})")
    return None


def check_nonempty(spec: Spec, jobs: list[Job]) -> None:
    from ..errors import BadInputError

    if not any(j.skip is None for j in jobs):
        raise BadInputError(f"spec {spec.source}: every one of the {len(jobs)} jobs would be "
                            "skipped (e.g. engines that run none of the formats); the grid is "
                            "empty")
