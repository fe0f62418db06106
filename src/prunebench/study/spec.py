"""Study specs: a YAML grid of models, pruning methods, sparsities, storage formats, value
encodings, engines, batch sizes, thread counts and seeds, validated before anything runs.

A spec is a YAML file or the name of a built-in one (``default``, ``smoke``, ``full``; see
``prunebench/studies/*.yaml``). Every key is checked; an unknown key, a value of the wrong type
or a name no registry knows raises :class:`~prunebench.errors.BadInputError` with one line
naming the key, the value and what is allowed.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInputError
from ..recipe import FINETUNE_STEPS

BUILTIN = ("default", "smoke", "full")
MEASURE_DEFAULTS = {"warmup": 2, "min_runs": 5, "min_time": 0.1, "max_time": 2.0}
METHOD_DEFAULTS = {"scope": "layer", "schedule": "oneshot", "block": [4, 4], "n": 2, "m": 4,
                   "rounds": 3, "norm": "l1", "time": True, "formats": None}
TOP_KEYS = ("name", "description", "models", "methods", "sparsities", "seeds",
            "finetune_steps", "finetune", "layers", "formats", "format_options", "values",
            "timed_values", "engines", "batches", "threads", "measure", "verify", "controls",
            "profile", "hosts", "run_profile")
MODEL_OVERRIDES = ("methods", "sparsities", "seeds", "formats", "values", "timed_values",
                   "engines", "batches", "threads", "layers", "finetune_steps", "finetune")
FINETUNE_KEYS = ("lr", "batch", "epochs", "schedule", "early_stop", "validation")


@dataclass(frozen=True)
class Method:
    """One pruning method of a study, with the settings that change its result."""

    name: str
    scope: str = "layer"
    schedule: str = "oneshot"
    block: tuple[int, int] = (4, 4)
    n: int = 2
    m: int = 4
    rounds: int = 3
    norm: str = "l1"
    time: bool = True
    formats: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """Short unique name: ``magnitude``, ``magnitude-global``, ``block4x4``, ``nm2:4``."""
        base = {"block": f"block{self.block[0]}x{self.block[1]}",
                "nm": f"nm{self.n}:{self.m}"}.get(self.name, self.name)
        if self.scope != "layer":
            base += f"-{self.scope}"
        if self.schedule != "oneshot":
            base += f"-{self.schedule}"
        return base

    @property
    def fixed_sparsity(self) -> float | None:
        return 1.0 - self.n / self.m if self.name == "nm" else None

    def key(self) -> dict:
        """What determines the pruned weights (hashed into job keys)."""
        k = {"name": self.name, "scope": self.scope, "schedule": self.schedule}
        if self.name == "block":
            k["block"] = list(self.block)
        if self.name == "nm":
            k.update(n=self.n, m=self.m)
        if self.name in ("block", "channel"):
            k["norm"] = self.norm
        if self.schedule in ("iterative", "iterative-linear", "rewind"):
            k["rounds"] = self.rounds
        return k


@dataclass(frozen=True)
class ModelPlan:
    """The grid of one model after per-model overrides."""

    name: str
    methods: tuple[Method, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    formats: tuple[str, ...]
    values: tuple[str, ...]
    timed_values: tuple[str, ...]
    engines: tuple[str, ...]
    batches: tuple[int, ...]
    threads: tuple[int, ...]
    layers: str
    finetune_steps: int
    control_of: str | None = None
    #: the spec's ``finetune`` settings as sorted (key, value) pairs (see :func:`_finetune`)
    finetune: tuple = ()


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    source: str
    models: tuple[ModelPlan, ...]
    format_options: dict = field(default_factory=dict)
    measure: dict = field(default_factory=lambda: dict(MEASURE_DEFAULTS))
    verify: dict = field(default_factory=dict)
    quantized: tuple[str, ...] = ()
    profile: dict | None = None
    raw: dict = field(default_factory=dict, repr=False)
    hosts: str = "one"
    run_profile: str = "default"


# ------------------------------------------------------------------------------ loading


def builtin_path(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("prunebench") / "studies" / f"{name}.yaml"))


def load_spec(spec: str | os.PathLike | dict | None = None) -> Spec:
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
        raise BadInputError(f"spec {path}: expected a mapping of keys "
                            f"({', '.join(TOP_KEYS)}), got {type(raw).__name__}")
    return validate(raw, source=str(path))


# ------------------------------------------------------------------------------ validation


class _Check:
    """Small helpers that raise one-line errors naming the spec, the key and the value."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, value: Any, allowed: str):
        raise BadInputError(f"spec {self.source}: {key}: got {value!r}; {allowed}")

    def keys(self, where: str, d: Any, allowed: tuple[str, ...], required=()) -> dict:
        if not isinstance(d, dict):
            self.fail(where or "spec", d, f"expected a mapping with keys {', '.join(allowed)}")
        for k in d:
            if k not in allowed:
                raise BadInputError(f"spec {self.source}: unknown key "
                                    f"{(where + '.' if where else '') + str(k)!r}; "
                                    f"allowed: {', '.join(allowed)}")
        for k in required:
            if k not in d:
                raise BadInputError(f"spec {self.source}: {where or 'spec'} needs key {k!r}")
        return d

    def int_(self, key, v, lo, hi=None) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            rng = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
            self.fail(key, v, f"expected {rng}")
        return v

    def num(self, key, v, lo, hi=None, lo_open=False, hi_open=False) -> float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok:
            ok = (v > lo if lo_open else v >= lo) and (
                hi is None or (v < hi if hi_open else v <= hi))
        if not ok:
            lb = "(" if lo_open else "["
            rb = ")" if hi_open else "]"
            self.fail(key, v, f"expected a number in {lb}{lo}, {'inf' if hi is None else hi}{rb}")
        return float(v)

    def choice(self, key, v, allowed) -> Any:
        if not isinstance(v, (str, int)) or isinstance(v, bool) or v not in allowed:
            self.fail(key, v, f"allowed: {', '.join(map(str, allowed))}")
        return v

    def list_(self, key, v, item, nonempty=True) -> tuple:
        if not isinstance(v, list):
            self.fail(key, v, "expected a list")
        if nonempty and not v:
            raise BadInputError(f"spec {self.source}: {key}: the list is empty, so the grid "
                                "would be empty; give at least one value")
        out = tuple(item(f"{key}[{i}]", x) for i, x in enumerate(v))
        seen = set()
        for i, x in enumerate(out):
            h = x.label if isinstance(x, Method) else x
            if h in seen:
                self.fail(f"{key}[{i}]", v[i], "each value may appear once")
            seen.add(h)
        return out


def _registries():
    from .. import engines, formats, pruning, zoo
    from . import controls  # noqa: F401  (registers the matched controls)

    return {"models": zoo.MODELS, "methods": pruning.METHODS, "scopes": pruning.SCOPES,
            "schedules": pruning.SCHEDULES, "formats": formats.FORMATS,
            "values": formats.VALUE_ENCODINGS, "engines": engines.ENGINES}


def _method(c: _Check, key: str, v: Any, reg: dict) -> Method:
    if isinstance(v, str):
        v = {"name": v}
    c.keys(key, v, ("name", *METHOD_DEFAULTS), required=("name",))
    d = {**METHOD_DEFAULTS, **v}
    name = c.choice(f"{key}.name", d["name"], list(reg["methods"]))
    scope = c.choice(f"{key}.scope", d["scope"], list(reg["scopes"]))
    schedule = c.choice(f"{key}.schedule", d["schedule"], list(reg["schedules"]))
    block = d["block"]
    if not (isinstance(block, list) and len(block) == 2):
        c.fail(f"{key}.block", block, "expected [rows, cols] such as [4, 4]")
    block = (c.int_(f"{key}.block[0]", block[0], 1), c.int_(f"{key}.block[1]", block[1], 1))
    m = c.choice(f"{key}.m", d["m"], [2, 4, 8, 16])
    n = c.int_(f"{key}.n", d["n"], 1, m - 1)
    rounds = c.int_(f"{key}.rounds", d["rounds"], 1)
    norm = c.choice(f"{key}.norm", d["norm"], ["l1", "l2"])
    if not isinstance(d["time"], bool):
        c.fail(f"{key}.time", d["time"], "expected true or false")
    fmts = d["formats"]
    if fmts is not None:
        fmts = c.list_(f"{key}.formats", fmts,
                       lambda k, x: c.choice(k, x, list(reg["formats"]) + ["auto"]))
    if name == "channel" and schedule in ("gradual", "rewind"):
        c.fail(f"{key}.schedule", schedule, "channel pruning allows: oneshot, iterative, "
                                            "iterative-linear")
    return Method(name, scope, schedule, block, n, m, rounds, norm, d["time"], fmts)


def validate(raw: dict, source: str = "<spec>") -> Spec:
    """Check every key of a parsed spec and return the :class:`Spec`."""
    import os as _os

    from ..benchmark import batch_too_big
    from ..zoo import SEED_MAX

    c = _Check(source)
    reg = _registries()
    c.keys("", raw, TOP_KEYS, required=("models",))
    name = raw.get("name", Path(source).stem if source != "<dict>" else "study")
    if not isinstance(name, str) or not name:
        c.fail("name", name, "expected a non-empty string")
    description = raw.get("description", "")
    if not isinstance(description, str):
        c.fail("description", description, "expected a string")

    top: dict[str, Any] = {}
    top["methods"] = c.list_("methods", raw.get("methods", ["magnitude"]),
                             lambda k, v: _method(c, k, v, reg), nonempty=False)
    top["sparsities"] = _sparsities(c, "sparsities", raw.get("sparsities", [0.5, 0.9]))
    top["seeds"] = c.list_("seeds", raw.get("seeds", [0]), lambda k, v: c.int_(k, v, 0, SEED_MAX))
    top["finetune_steps"] = c.int_("finetune_steps",
                                   raw.get("finetune_steps", FINETUNE_STEPS), 0)
    top["finetune"] = _finetune(c, "finetune", raw.get("finetune", {}) or {})
    top["layers"] = c.choice("layers", raw.get("layers", "default"), ["default", "all"])
    top["formats"] = c.list_("formats", raw.get("formats", ["dense", "csr"]),
                             lambda k, v: c.choice(k, v, list(reg["formats"]) + ["auto"]))
    top["values"] = c.list_("values", raw.get("values", ["fp32"]),
                            lambda k, v: c.choice(k, v, list(reg["values"])))
    top["timed_values"] = c.list_("timed_values", raw.get("timed_values", ["fp32"]),
                                  lambda k, v: c.choice(k, v, list(reg["values"])))
    top["engines"] = _engines(c, "engines", raw.get("engines", "all"), reg)
    top["batches"] = c.list_("batches", raw.get("batches", [1]), lambda k, v: c.int_(k, v, 1))
    cores = _os.cpu_count() or 1
    top["threads"] = c.list_("threads", raw.get("threads", [1]),
                             lambda k, v: c.int_(k, v, 1, cores))

    format_options = _format_options(c, raw.get("format_options", {}) or {}, reg)
    measure = _measure(c, raw.get("measure", {}) or {})
    verify = _verify(c, raw.get("verify", {}) or {}, reg)

    models_raw = raw["models"]
    if not isinstance(models_raw, list) or not models_raw:
        raise BadInputError(f"spec {source}: models: got {models_raw!r}; the grid is empty, "
                            "list at least one zoo model")
    plans: list[ModelPlan] = []
    labels = {m.label: m for m in top["methods"]}
    for i, entry in enumerate(models_raw):
        key = f"models[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        c.keys(key, entry, ("name", *MODEL_OVERRIDES), required=("name",))
        mname = c.choice(f"{key}.name", entry["name"], list(reg["models"]))
        if any(p.name == mname for p in plans):
            c.fail(f"{key}.name", mname, "each model may appear once")
        d = dict(top)
        for k, v in entry.items():
            if k == "name":
                continue
            if k == "methods":
                d["methods"] = c.list_(f"{key}.methods", v,
                                       lambda kk, x: labels[c.choice(kk, x, list(labels))],
                                       nonempty=False)
            elif k == "sparsities":
                d[k] = _sparsities(c, f"{key}.sparsities", v)
            elif k == "seeds":
                d[k] = c.list_(f"{key}.seeds", v, lambda kk, x: c.int_(kk, x, 0, SEED_MAX))
            elif k in ("formats",):
                d[k] = c.list_(f"{key}.{k}", v, lambda kk, x: c.choice(kk, x, list(reg["formats"]) + ["auto"]))
            elif k in ("values", "timed_values"):
                d[k] = c.list_(f"{key}.{k}", v, lambda kk, x: c.choice(kk, x, list(reg["values"])))
            elif k == "engines":
                d[k] = _engines(c, f"{key}.engines", v, reg)
            elif k == "batches":
                d[k] = c.list_(f"{key}.batches", v, lambda kk, x: c.int_(kk, x, 1))
            elif k == "threads":
                d[k] = c.list_(f"{key}.threads", v, lambda kk, x: c.int_(kk, x, 1, cores))
            elif k == "layers":
                d[k] = c.choice(f"{key}.layers", v, ["default", "all"])
            elif k == "finetune_steps":
                d[k] = c.int_(f"{key}.finetune_steps", v, 0)
            elif k == "finetune":
                d[k] = _finetune(c, f"{key}.finetune", v or {})
        for b in d["batches"]:  # the check bench --batch makes: one call's inputs must fit
            too_big = batch_too_big(mname, b)
            if too_big:
                c.fail(f"{key}.batches" if "batches" in entry else "batches", b, too_big)
        plans.append(ModelPlan(mname, d["methods"], d["sparsities"], d["seeds"], d["formats"],
                               d["values"], d["timed_values"], d["engines"], d["batches"],
                               d["threads"], d["layers"], d["finetune_steps"],
                               finetune=d["finetune"]))

    controls_raw = c.keys("controls", raw.get("controls", {}) or {}, ("matched", "quantized"))
    from . import controls as ctl

    names = [p.name for p in plans]
    matched = c.list_("controls.matched", controls_raw.get("matched", []),
                      lambda k, v: c.choice(k, v, [n for n in names
                                                   if n in ctl.matched_controls()]),
                      nonempty=False)
    by_name = {p.name: p for p in plans}
    for base in matched:
        p = by_name[base]
        name_c = ctl.control_name(base)
        if name_c in by_name:
            continue
        plans.append(ModelPlan(name_c, (), (), p.seeds, ("dense",), ("fp32",), ("fp32",),
                               p.engines, p.batches, p.threads, p.layers, p.finetune_steps,
                               control_of=base, finetune=p.finetune))
    trained = [n for n in names if _trained(n)]
    quantized = c.list_("controls.quantized", controls_raw.get("quantized", []),
                        lambda k, v: c.choice(k, v, trained), nonempty=False)
    profile = _profile(c, raw.get("profile"), labels)
    hosts = c.choice("hosts", raw.get("hosts", "one"), ["one", "all"])
    from ..measure.profile import PROFILES

    run_profile = c.choice("run_profile", raw.get("run_profile", "default"), list(PROFILES))
    if run_profile == "edge":
        for p in plans:
            if p.threads != (1,):
                c.fail("threads", list(p.threads), f"run_profile edge runs on 1 thread "
                                                    f"(model {p.name}): use threads: [1]")
    return Spec(name, description, source, tuple(plans), format_options, measure, verify,
                quantized, profile, raw, hosts, run_profile)


def _trained(name: str) -> bool:
    from .. import zoo

    return zoo.get_spec(name).trained


def _sparsities(c: _Check, key: str, v: Any) -> tuple[float, ...]:
    vals = c.list_(key, v, lambda k, x: c.num(k, x, 0.0, 1.0, hi_open=True), nonempty=False)
    return tuple(sorted({float(x) for x in vals if x > 0}))


def _engines(c: _Check, key: str, v: Any, reg: dict) -> tuple[str, ...]:
    valid = list(reg["engines"])
    if v == "all":
        return ("all",)
    return c.list_(key, v, lambda k, x: c.choice(k, x, valid + ["all"]))


def _format_options(c: _Check, d: Any, reg: dict) -> dict:
    c.keys("format_options", d, tuple(reg["formats"]))
    out = {}
    for fmt, opts in d.items():
        cls = reg["formats"].get(fmt)
        allowed = tuple(cls.option_defaults)
        if not allowed:
            c.fail(f"format_options.{fmt}", opts, f"format {fmt!r} takes no options")
        c.keys(f"format_options.{fmt}", opts, allowed)
        o = {}
        for k, val in opts.items():
            o[k] = list(val) if isinstance(val, tuple) else val
        try:  # let the format itself judge the values, on a 16 x 16 matrix
            cls._check_options((16, 16), **{**cls.option_defaults,
                                            **{k: tuple(x) if isinstance(x, list) else x
                                               for k, x in o.items()}})
        except BadInputError as e:
            raise BadInputError(f"spec {c.source}: format_options.{fmt}: {e}") from None
        out[fmt] = o
    for fmt in reg["formats"]:  # lowrank needs a rank or an energy: its default one
        if reg["formats"].get(fmt).one_of_default:
            out.setdefault(fmt, dict(reg["formats"].get(fmt).one_of_default))
    return out


def _measure(c: _Check, d: Any) -> dict:
    from ..measure.timer import MAX_TIMED_S

    c.keys("measure", d, tuple(MEASURE_DEFAULTS))
    m = {**MEASURE_DEFAULTS, **d}
    m["warmup"] = c.int_("measure.warmup", m["warmup"], 0)
    m["min_runs"] = c.int_("measure.min_runs", m["min_runs"], 1)
    # at most an hour, as bench --min-time (inf and NaN refused: the Timer's own rule)
    m["min_time"] = c.num("measure.min_time", m["min_time"], 0.0, MAX_TIMED_S)
    m["max_time"] = c.num("measure.max_time", m["max_time"], 0.0, MAX_TIMED_S, lo_open=True)
    if m["max_time"] < m["min_time"]:
        c.fail("measure.max_time", m["max_time"], f"expected >= measure.min_time "
                                                  f"({m['min_time']})")
    return m


def _verify(c: _Check, d: Any, reg: dict) -> dict:
    c.keys("verify", d, ("inputs",))
    from ..runtime.verify import TOLERANCE

    return {"inputs": c.int_("verify.inputs", d.get("inputs", 64), 1),
            "tolerance": dict(TOLERANCE)}


def _profile(c: _Check, d: Any, labels: dict) -> dict | None:
    if d is None:
        return None
    c.keys("profile", d, ("method", "sparsity", "batch"), required=("method",))
    method = c.choice("profile.method", d["method"], list(labels))
    sparsity = c.num("profile.sparsity", d.get("sparsity", 0.9), 0.0, 1.0, hi_open=True)
    batch = c.int_("profile.batch", d.get("batch", 1), 1)
    return {"method": method, "sparsity": sparsity, "batch": batch}


def _finetune(c: "_Check", key: str, d: Any) -> tuple:
    """A ``finetune`` mapping checked (the same rules as :class:`prunebench.train.Finetune`)
    as sorted (key, value) pairs."""
    from ..train import Finetune

    c.keys(key, d, FINETUNE_KEYS)
    names = {"lr": "lr", "batch": "batch_size", "epochs": "epochs", "schedule": "lr_schedule",
             "early_stop": "early_stop", "validation": "validation"}
    for k, v in d.items():
        try:
            Finetune(**{names[k]: v}).checked()
        except BadInputError as e:  # "NAME: got V, expected WHAT": name the spec's key
            c.fail(f"{key}.{k}", v, "expected" + str(e).split(", expected", 1)[-1])
    return tuple(sorted(d.items()))


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
