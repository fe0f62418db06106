"""The study spec as pydantic models: one model per mapping of the YAML file (the spec, a
method, a model's overrides, ``measure``, ``verify``, ``controls``, ``profile``), each field a
key with its default, declared in the order the keys are checked.

Every field is checked by :class:`.spec_checks.Checker` (a before-validator), so a mistake is
the same one line as before pydantic (the key path, the value, what is allowed), and the first
mistake stops validation (:class:`.spec_checks.SpecRefusal`). A model's overrides are checked
in the order the file gives them. :func:`.spec.validate` is the entry point; the models turn
into the frozen dataclasses of :mod:`.spec_types`.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo,
                      model_validator)

from ..recipe import FINETUNE_STEPS
from .spec_checks import Checker, trained
from .spec_types import MEASURE_DEFAULTS, Method, ModelPlan, Spec

#: the keys of a spec, as its "unknown key" message lists them
TOP_KEYS = ("name", "description", "models", "methods", "sparsities", "seeds",
            "finetune_steps", "finetune", "layers", "formats", "format_options", "values",
            "timed_values", "engines", "batches", "threads", "measure", "verify", "controls",
            "profile", "hosts", "run_profile")
#: the keys a model entry may override, each checked as the spec's own key is
MODEL_OVERRIDES = ("methods", "sparsities", "seeds", "formats", "values", "timed_values",
                   "engines", "batches", "threads", "layers", "finetune_steps", "finetune")
METHOD_KEYS = ("name", "scope", "schedule", "block", "n", "m", "rounds", "norm", "time",
               "formats")

M = TypeVar("M", bound="Section")


def _checker(info: ValidationInfo) -> Checker:
    assert info.context is not None  # Section.check always passes one
    return info.context["checker"]


def _key(info: ValidationInfo) -> str:
    """The key path of the field being checked: ``measure.warmup``, ``methods[1].scope``."""
    where = info.context.get("where", "") if info.context else ""
    name = info.field_name or ""
    return f"{where}.{name}" if where else name


def rule(check: Callable[[Checker, str, Any, ValidationInfo], Any]) -> BeforeValidator:
    """A field checked by ``check(checker, key path, value, info)``, which returns the value
    the field holds."""
    return BeforeValidator(lambda v, info: check(_checker(info), _key(info), v, info))


def by(name: str) -> BeforeValidator:
    """A field checked by the :class:`Checker` method ``name`` (the check a spec's key and a
    model's override of it share)."""
    return rule(lambda c, key, v, info: getattr(c, name)(key, v))


class Section(BaseModel):
    """A mapping of the spec: its keys are checked first (unknown ones, then missing required
    ones), then its fields in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    KEYS: ClassVar[tuple[str, ...]] = ()
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any, info: ValidationInfo) -> Any:
        c = _checker(info)
        where = info.context.get("where", "") if info.context else ""
        c.keys(where, data, cls.KEYS, cls.REQUIRED)
        return cls.prepare(c, where, data, info.context or {})

    @classmethod
    def prepare(cls, c: Checker, where: str, data: dict, context: dict) -> dict:
        """The mapping the fields are validated from (``data`` itself unless overridden)."""
        return data

    @classmethod
    def check(cls: type[M], c: Checker, where: str, data: Any, **context: Any) -> M:
        """The section at key path ``where`` (``""`` for the spec itself), validated."""
        return cls.model_validate(data, context={"checker": c, "where": where, **context})


def given(value: Any) -> Any:
    """A default as a file would give it (a list, a mapping), so that it is checked, and
    turned into the field's type, the way a given value is."""
    return Field(default_factory=lambda: copy.deepcopy(value))


def _choice(registry: str) -> BeforeValidator:
    return rule(lambda c, key, v, info: c.choice(key, v, list(c.reg[registry])))


def _block(c: Checker, key: str, v: Any, info: ValidationInfo) -> tuple[int, int]:
    if not (isinstance(v, list) and len(v) == 2):
        c.fail(key, v, "expected [rows, cols] such as [4, 4]")
    return (c.int_(f"{key}[0]", v[0], 1), c.int_(f"{key}[1]", v[1], 1))


def _bool(c: Checker, key: str, v: Any, info: ValidationInfo) -> bool:
    if not isinstance(v, bool):
        c.fail(key, v, "expected true or false")
    return v


class MethodEntry(Section):
    """One entry of ``methods``: a name, or a mapping of a name and its settings."""

    KEYS = METHOD_KEYS
    REQUIRED = ("name",)

    name: Annotated[str, _choice("methods")]
    scope: Annotated[str, _choice("scopes")] = "layer"
    schedule: Annotated[str, _choice("schedules")] = "oneshot"
    block: Annotated[tuple[int, int], rule(_block)] = given([4, 4])
    m: Annotated[int, rule(lambda c, key, v, info: c.choice(key, v, [2, 4, 8, 16]))] = 4
    n: Annotated[int, rule(lambda c, key, v, info: c.int_(key, v, 1, info.data["m"] - 1))] = 2
    rounds: Annotated[int, rule(lambda c, key, v, info: c.int_(key, v, 1))] = 3
    norm: Annotated[str, rule(lambda c, key, v, info: c.choice(key, v, ["l1", "l2"]))] = "l1"
    time: Annotated[bool, rule(_bool)] = True
    formats: Annotated[tuple[str, ...] | None,
                       rule(lambda c, key, v, info: None if v is None else c.formats(key, v))
                       ] = None

    @model_validator(mode="after")
    def _channel_schedules(self, info: ValidationInfo) -> MethodEntry:
        if self.name == "channel" and self.schedule in ("gradual", "rewind"):
            where = info.context["where"] if info.context else ""
            _checker(info).fail(f"{where}.schedule", self.schedule,
                                "channel pruning allows: oneshot, iterative, iterative-linear")
        return self

    def method(self) -> Method:
        return Method(self.name, self.scope, self.schedule, self.block, self.n, self.m,
                      self.rounds, self.norm, self.time, self.formats)


def _method(c: Checker, key: str, v: Any) -> Method:
    return MethodEntry.check(c, key, {"name": v} if isinstance(v, str) else v).method()


def _max_timed_s() -> float:
    from ..measure.timer import MAX_TIMED_S

    return MAX_TIMED_S


class MeasureSettings(Section):
    """``measure``: how long each latency job times (at most an hour per run, as bench's)."""

    KEYS = tuple(MEASURE_DEFAULTS)

    warmup: Annotated[int, rule(lambda c, key, v, info: c.int_(key, v, 0))] = 2
    min_runs: Annotated[int, rule(lambda c, key, v, info: c.int_(key, v, 1))] = 5
    # inf and NaN refused: the Timer's own rule
    min_time: Annotated[float, rule(lambda c, key, v, info: c.num(key, v, 0.0, _max_timed_s()))
                        ] = 0.1
    max_time: Annotated[float, rule(lambda c, key, v, info: c.num(key, v, 0.0, _max_timed_s(),
                                                                  lo_open=True))] = 2.0

    @model_validator(mode="after")
    def _max_after_min(self, info: ValidationInfo) -> MeasureSettings:
        if self.max_time < self.min_time:
            _checker(info).fail("measure.max_time", self.max_time,
                                f"expected >= measure.min_time ({self.min_time})")
        return self


class VerifySettings(Section):
    """``verify``: how many test inputs each compiled model is compared on."""

    KEYS = ("inputs",)

    inputs: Annotated[int, rule(lambda c, key, v, info: c.int_(key, v, 1))] = 64

    def as_dict(self) -> dict[str, Any]:
        from ..runtime.verify import TOLERANCE

        return {"inputs": self.inputs, "tolerance": dict(TOLERANCE)}


class ProfileSettings(Section):
    """``profile``: the pruned model whose per-layer time is broken down."""

    KEYS = ("method", "sparsity", "batch")
    REQUIRED = ("method",)

    method: Annotated[str, rule(lambda c, key, v, info: c.choice(
        key, v, list(info.context["labels"]) if info.context else []))]
    sparsity: Annotated[float, rule(lambda c, key, v, info: c.num(key, v, 0.0, 1.0,
                                                                  hi_open=True))] = 0.9
    batch: Annotated[int, rule(lambda c, key, v, info: c.int_(key, v, 1))] = 1


class ControlsSettings(Section):
    """``controls``: matched-size dense models and int8-quantized runs of the spec's models."""

    KEYS = ("matched", "quantized")

    matched: Annotated[tuple[str, ...], rule(lambda c, key, v, info: c.list_(
        key, v, lambda k, x: c.choice(k, x, info.context["matchable"] if info.context else []),
        nonempty=False))] = given([])
    quantized: Annotated[tuple[str, ...], rule(lambda c, key, v, info: c.list_(
        key, v, lambda k, x: c.choice(k, x, info.context["trained"] if info.context else []),
        nonempty=False))] = given([])

    def plans(self, plans: tuple[ModelPlan, ...]) -> tuple[ModelPlan, ...]:
        """The dense control trained at the size each ``matched`` model keeps at 90%
        sparsity (unless the spec lists it itself)."""
        from . import controls as ctl

        by_name = {p.name: p for p in plans}
        out = []
        for base in self.matched:
            p = by_name[base]
            name = ctl.control_name(base)
            if name not in by_name:
                out.append(ModelPlan(name, (), (), p.seeds, ("dense",), ("fp32",), ("fp32",),
                                     p.engines, p.batches, p.threads, p.layers,
                                     p.finetune_steps, control_of=base, finetune=p.finetune))
        return tuple(out)


class ModelEntry(Section):
    """One entry of ``models``: a zoo name, or a mapping of a name and the keys it overrides
    (checked in the order given, as the spec's own keys are)."""

    KEYS = ("name", *MODEL_OVERRIDES)
    REQUIRED = ("name",)

    name: str
    methods: tuple[Method, ...] | None = None
    sparsities: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None
    formats: tuple[str, ...] | None = None
    values: tuple[str, ...] | None = None
    timed_values: tuple[str, ...] | None = None
    engines: tuple[str, ...] | None = None
    batches: tuple[int, ...] | None = None
    threads: tuple[int, ...] | None = None
    layers: str | None = None
    finetune_steps: int | None = None
    finetune: tuple[tuple[str, Any], ...] | None = None

    @classmethod
    def prepare(cls, c: Checker, where: str, data: dict, context: dict) -> dict:
        from ..benchmark import batch_too_big

        labels: dict[str, Method] = context["labels"]
        name = c.choice(f"{where}.name", data["name"], list(c.reg["models"]))
        if name in context["taken"]:
            c.fail(f"{where}.name", name, "each model may appear once")
        out: dict[str, Any] = {"name": name}
        for k, v in data.items():
            if k == "methods":
                out[k] = c.list_(f"{where}.methods", v,
                                 lambda kk, x: labels[c.choice(kk, x, list(labels))],
                                 nonempty=False)
            elif k != "name":  # timed_values: the check of values
                out[k] = getattr(c, "values" if k == "timed_values" else k)(f"{where}.{k}", v)
        for b in out.get("batches") or context["top"]["batches"]:
            too_big = batch_too_big(name, b)  # the check bench --batch makes
            if too_big:
                c.fail(f"{where}.batches" if "batches" in data else "batches", b, too_big)
        return out

    def plan(self, top: dict[str, Any]) -> ModelPlan:
        """This model's grid: its overrides, the spec's keys elsewhere."""
        d = {k: top[k] if getattr(self, k) is None else getattr(self, k)
             for k in MODEL_OVERRIDES}
        return ModelPlan(self.name, d["methods"], d["sparsities"], d["seeds"], d["formats"],
                         d["values"], d["timed_values"], d["engines"], d["batches"],
                         d["threads"], d["layers"], d["finetune_steps"], finetune=d["finetune"])


def _models(c: Checker, key: str, v: Any, info: ValidationInfo) -> tuple[ModelPlan, ...]:
    if not isinstance(v, list) or not v:
        c.refuse(f"models: got {v!r}; the grid is empty, list at least one zoo model")
    top = dict(info.data)
    labels = {m.label: m for m in top["methods"]}
    plans: list[ModelPlan] = []
    for i, entry in enumerate(v):
        entry = {"name": entry} if isinstance(entry, str) else entry
        plans.append(ModelEntry.check(c, f"models[{i}]", entry, labels=labels, top=top,
                                      taken=[p.name for p in plans]).plan(top))
    return tuple(plans)


def _controls(c: Checker, key: str, v: Any, info: ValidationInfo) -> ControlsSettings:
    from . import controls as ctl

    names = [p.name for p in info.data["models"]]
    return ControlsSettings.check(c, key, v or {},
                                  matchable=[n for n in names if n in ctl.matched_controls()],
                                  trained=[n for n in names if trained(n)])


def _profile(c: Checker, key: str, v: Any, info: ValidationInfo) -> dict[str, Any] | None:
    if v is None:
        return None
    labels = [m.label for m in info.data["methods"]]
    return ProfileSettings.check(c, key, v, labels=labels).model_dump()


def _run_profile(c: Checker, key: str, v: Any, info: ValidationInfo) -> str:
    from ..measure.profile import PROFILES

    return c.choice(key, v, list(PROFILES))


def _name(c: Checker, key: str, v: Any, info: ValidationInfo) -> str:
    if not isinstance(v, str) or not v:
        c.fail(key, v, "expected a non-empty string")
    return v


def _description(c: Checker, key: str, v: Any, info: ValidationInfo) -> str:
    if not isinstance(v, str):
        c.fail(key, v, "expected a string")
    return v


class SpecModel(Section):
    """A whole spec; :meth:`spec` gives the :class:`~.spec_types.Spec` the study runs."""

    KEYS = TOP_KEYS
    REQUIRED = ("models",)

    name: Annotated[str, rule(_name)]
    description: Annotated[str, rule(_description)] = ""
    methods: Annotated[tuple[Method, ...], rule(lambda c, key, v, info: c.list_(
        key, v, lambda k, x: _method(c, k, x), nonempty=False))] = given(["magnitude"])
    sparsities: Annotated[tuple[float, ...], by("sparsities")] = given([0.5, 0.9])
    seeds: Annotated[tuple[int, ...], by("seeds")] = given([0])
    finetune_steps: Annotated[int, by("finetune_steps")] = FINETUNE_STEPS
    finetune: Annotated[tuple[tuple[str, Any], ...], by("finetune")] = given({})
    layers: Annotated[str, by("layers")] = "default"
    formats: Annotated[tuple[str, ...], by("formats")] = given(["dense", "csr"])
    values: Annotated[tuple[str, ...], by("values")] = given(["fp32"])
    timed_values: Annotated[tuple[str, ...], by("values")] = given(["fp32"])
    engines: Annotated[tuple[str, ...], by("engines")] = given("all")
    batches: Annotated[tuple[int, ...], by("batches")] = given([1])
    threads: Annotated[tuple[int, ...], by("threads")] = given([1])
    format_options: Annotated[dict[str, dict[str, Any]], by("format_options")] = {}
    measure: Annotated[dict[str, Any], rule(lambda c, key, v, info: MeasureSettings.check(
        c, key, v or {}).model_dump())] = {}
    verify: Annotated[dict[str, Any], rule(lambda c, key, v, info: VerifySettings.check(
        c, key, v or {}).as_dict())] = {}
    models: Annotated[tuple[ModelPlan, ...], rule(_models)]
    controls: Annotated[ControlsSettings, rule(_controls)] = given({})
    profile: Annotated[dict[str, Any] | None, rule(_profile)] = None
    hosts: Annotated[str, rule(lambda c, key, v, info: c.choice(key, v, ["one", "all"]))] = "one"
    run_profile: Annotated[str, rule(_run_profile)] = "default"

    @classmethod
    def prepare(cls, c: Checker, where: str, data: dict, context: dict) -> dict:
        if "name" in data:
            return data
        return {**data, "name": "study" if c.source == "<dict>" else Path(c.source).stem}

    @model_validator(mode="after")
    def _edge_runs_one_thread(self, info: ValidationInfo) -> SpecModel:
        if self.run_profile == "edge":
            for p in self.models:
                if p.threads != (1,):
                    _checker(info).fail("threads", list(p.threads),
                                        f"run_profile edge runs on 1 thread (model {p.name}): "
                                        "use threads: [1]")
        return self

    def spec(self, raw: dict, source: str) -> Spec:
        plans = self.models + self.controls.plans(self.models)
        return Spec(self.name, self.description, source, plans, self.format_options,
                    self.measure, self.verify, self.controls.quantized, self.profile, raw,
                    self.hosts, self.run_profile)
