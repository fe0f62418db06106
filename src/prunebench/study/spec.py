"""Study specs: a YAML grid of models, pruning methods, sparsities, storage formats, value
encodings, engines, batch sizes, thread counts and seeds, validated before anything runs.

A spec is a YAML file or the name of a built-in one (``default``, ``smoke``, ``full``; see
``prunebench/studies/*.yaml``). Every key is checked (pydantic models, :mod:`.spec_models`);
an unknown key, a value of the wrong type or a name no registry knows raises
:class:`~prunebench.errors.BadInputError` with one line naming the key, the value and what is
allowed. The validated spec is a :class:`~.spec_types.Spec`.

Keys (defaults in brackets)
---------------------------
``name``, ``description``
``models``
    zoo names, or mappings ``{name: ..., <override>: ...}`` whose other keys replace the
    top-level ``methods`` (a list of method labels), ``sparsities``, ``seeds``, ``formats``,
    ``values``, ``timed_values``, ``engines``, ``batches``, ``threads``, ``layers``,
    ``finetune_steps`` or ``finetune`` for that model only.
``methods``
    names, or mappings ``{name, scope [layer], schedule [oneshot], block [[4, 4]], n [2],
    m [4], rounds [3], norm [l1], time [true], formats [all]}``. ``time: false`` measures
    accuracy only (no latency jobs); ``formats`` narrows the formats tried on this method's
    models (e.g. only ``dense`` after channel pruning, which leaves no zeros). ``nm`` ignores
    ``sparsities``: its pattern fixes the sparsity at ``1 - n/m``.
``sparsities`` fractions in [0, 1); the dense model (0) is always included.
``seeds`` [[0]]: accuracy is measured for every seed; sizes and latencies on the first one
    (they depend on the sparsity pattern, not on which seed trained the weights). Latency-only
    models (random weights, no accuracy) use the first seed only.
``finetune_steps`` [300, ``train.FINETUNE_STEPS``]: the most fine-tuning steps of a pruned
    model (early stopping may use fewer); ``finetune`` [{}]: ``{lr, batch, epochs, schedule
    (constant|cosine), early_stop [true], validation [0.1]}``; ``lr`` and ``batch`` default to
    the model's own training recipe, ``epochs`` replaces ``finetune_steps`` when given
    (:class:`prunebench.train.Finetune`). ``layers`` [default]: ``default`` (every
    Linear/Conv/RNN but the first and the last) or ``all``.
``formats`` [[dense, csr]], ``format_options`` [{}]: e.g. ``{bsr: {block: [4, 4]}}``.
    ``auto`` is the per-layer planner (:mod:`prunebench.planner`, latency objective) on the
    native engine: planned per pruned model, batch and thread count for latency jobs; at
    batch 1, 1 thread and fp32 for size jobs (the file, in any value encoding, stores the
    formats of that plan).
``values`` [[fp32]]: value encodings whose file size and accuracy are measured.
``timed_values`` [[fp32]]: value encodings timed on the engines.
``engines`` [all]: engine names or ``all`` (every registered engine).
``batches`` [[1]], ``threads`` [[1]].
``measure``: ``warmup`` [2], ``min_runs`` [5], ``min_time`` [0.1], ``max_time`` [2.0] (seconds).
``verify``: ``inputs`` [64] test inputs compared with the dense fp32 reference by
    :func:`prunebench.runtime.verify` (its tolerance per value encoding; 100% top-1 agreement
    for fp32), called at each timed batch size.
``controls``: ``matched`` [[]] models trained dense at the parameter count they keep at 90%
    sparsity; ``quantized`` [[]] models run with int8 dynamic quantization.
``profile``: ``{method, scope [layer], sparsity [0.9], batch [1]}`` or null: per-layer time
    breakdown of that pruned model on every engine/format pair.
``run_profile`` [default]: ``default`` (the machine as it comes) or ``edge`` (1 thread and
    128-bit SIMD code, a proxy for a Cortex-A class board; :mod:`prunebench.measure.profile`):
    the study runs in a child process with the profile's variables and its rows carry it.
    ``edge`` needs ``threads: [1]``. (``profile`` is the per-layer breakdown below.)
``hosts`` [one]: on a Dask cluster (``study --workers/--cluster``), ``one`` runs every job
    once on any worker; ``all`` runs the timed jobs (latency, profile, quant-latency) on every
    distinct machine of the cluster, so each device measures the same grid. The local runner
    has one machine, so it ignores the key; it is not part of any job's hash.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import BadInputError
from .spec_types import MEASURE_DEFAULTS, Method, ModelPlan, Spec

__all__ = ["BUILTIN", "MEASURE_DEFAULTS", "Method", "ModelPlan", "Spec", "builtin_path",
           "load_spec", "spec_summary", "validate"]

BUILTIN = ("default", "smoke", "full")


def builtin_path(name: str) -> Path:
    """The YAML file of built-in study ``name``."""
    from importlib import resources

    return Path(str(resources.files("prunebench") / "studies" / f"{name}.yaml"))


def load_spec(spec: str | os.PathLike[str] | dict | None = None) -> Spec:
    """Read and validate a spec: a built-in name, a YAML path, an already-parsed dict, or None
    (the ``default`` study)."""
    if spec is None:
        spec = "default"
    if isinstance(spec, dict):
        return validate(spec, source="<dict>")
    text_name = str(spec)
    if text_name in BUILTIN and not Path(text_name).exists():
        path = builtin_path(text_name)
    else:
        path = Path(text_name)
        if not path.exists():
            raise BadInputError(f"spec: {text_name!r} is neither a file nor a built-in study; "
                                f"built-in: {', '.join(BUILTIN)}")
        if path.is_dir():
            raise BadInputError(f"spec: {text_name!r} is a directory, expected a YAML file")
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise BadInputError(f"spec {path}: not UTF-8 text (byte {e.object[e.start]:#04x} at "
                            f"offset {e.start}); save the YAML file as UTF-8") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise BadInputError(f"spec {path}: not valid YAML{at}: "
                            f"{getattr(e, 'problem', None) or e}") from None
    except OSError as e:
        raise BadInputError(f"spec: cannot read {str(path)!r}: {e.strerror}") from None
    if not isinstance(raw, dict):
        from .spec_models import TOP_KEYS

        raise BadInputError(f"spec {path}: expected a mapping of keys "
                            f"({', '.join(TOP_KEYS)}), got {type(raw).__name__}")
    return validate(raw, source=str(path))


def validate(raw: dict, source: str = "<spec>") -> Spec:
    """Check every key of a parsed spec and return the :class:`Spec`; the first mistake is
    BadInputError (one line: the spec, the key path, the value, what is allowed)."""
    # pydantic is imported here, by the one command that reads specs, not by every study import
    from .spec_checks import Checker, SpecRefusal
    from .spec_models import SpecModel

    c = Checker(source)
    try:
        return SpecModel.check(c, "", raw).spec(raw, source)
    except SpecRefusal as e:
        raise BadInputError(str(e)) from None


def spec_summary(spec: Spec) -> dict:
    """JSON-able description of the grid (for ``--json`` and the report)."""
    return {"name": spec.name, "description": spec.description, "source": spec.source,
            "models": [{"name": p.name, "methods": [m.label for m in p.methods],
                        "sparsities": list(p.sparsities), "seeds": list(p.seeds),
                        "formats": list(p.formats), "values": list(p.values),
                        "timed_values": list(p.timed_values), "engines": list(p.engines),
                        "batches": list(p.batches), "threads": list(p.threads),
                        "layers": p.layers, "finetune_steps": p.finetune_steps,
                        "finetune": dict(p.finetune),
                        "control_of": p.control_of} for p in spec.models],
            "measure": spec.measure, "verify": spec.verify,
            "quantized": list(spec.quantized), "profile": spec.profile, "hosts": spec.hosts,
            "run_profile": spec.run_profile}
