"""The checks behind the study spec's pydantic models (:mod:`.spec_models`): each refuses a
value with one line naming the spec, the key path, the value given and what is allowed.

The checks raise :class:`SpecRefusal`, which is not a ``ValueError``: pydantic lets it through
at once instead of collecting it, so validation stops at the first mistake in the order the
keys are checked, and :func:`.spec.validate` turns it into a
:class:`~prunebench.errors.BadInputError`.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from ..errors import BadInputError

T = TypeVar("T")


class SpecRefusal(Exception):
    """A spec's first mistake, as the one line :class:`BadInputError` will carry."""


class Checker:
    """The context of one validation (the spec's source, the registries, the core count) and
    the small checks that refuse with one line naming the spec, the key and the value."""

    def __init__(self, source: str):
        from ..zoo import SEED_MAX

        self.source = source
        self.reg = registries()
        self.cores = os.cpu_count() or 1
        self.seed_max = SEED_MAX

    def refuse(self, message: str) -> NoReturn:
        raise SpecRefusal(f"spec {self.source}: {message}")

    def fail(self, key: str, value: Any, allowed: str) -> NoReturn:
        self.refuse(f"{key}: got {value!r}; {allowed}")

    def keys(self, where: str, d: Any, allowed: Sequence[str], required: Sequence[str] = ()
             ) -> dict:
        """``d`` itself, once it is a mapping whose keys are all allowed and hold ``required``."""
        if not isinstance(d, dict):
            self.fail(where or "spec", d, f"expected a mapping with keys {', '.join(allowed)}")
        for k in d:
            if k not in allowed:
                self.refuse(f"unknown key {(where + '.' if where else '') + str(k)!r}; "
                            f"allowed: {', '.join(allowed)}")
        for k in required:
            if k not in d:
                self.refuse(f"{where or 'spec'} needs key {k!r}")
        return d

    def int_(self, key: str, v: Any, lo: int, hi: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            rng = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
            self.fail(key, v, f"expected {rng}")
        return v

    def num(self, key: str, v: Any, lo: float, hi: float | None = None, lo_open: bool = False,
            hi_open: bool = False) -> float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok:
            ok = (v > lo if lo_open else v >= lo) and (
                hi is None or (v < hi if hi_open else v <= hi))
        if not ok:
            lb = "(" if lo_open else "["
            rb = ")" if hi_open else "]"
            self.fail(key, v, f"expected a number in {lb}{lo}, {'inf' if hi is None else hi}{rb}")
        return float(v)

    def choice(self, key: str, v: Any, allowed: Sequence[Any]) -> Any:
        if not isinstance(v, (str, int)) or isinstance(v, bool) or v not in allowed:
            self.fail(key, v, f"allowed: {', '.join(map(str, allowed))}")
        return v

    def list_(self, key: str, v: Any, item: Callable[[str, Any], T], nonempty: bool = True
              ) -> tuple[T, ...]:
        """Each element of list ``v`` checked by ``item(key[i], element)``; no repeats (by
        ``label`` for methods)."""
        if not isinstance(v, list):
            self.fail(key, v, "expected a list")
        if nonempty and not v:
            self.refuse(f"{key}: the list is empty, so the grid would be empty; give at least "
                        "one value")
        out = tuple(item(f"{key}[{i}]", x) for i, x in enumerate(v))
        seen = set()
        for i, x in enumerate(out):
            h = getattr(x, "label", x)
            if h in seen:
                self.fail(f"{key}[{i}]", v[i], "each value may appear once")
            seen.add(h)
        return out

    # -- the checks a key of the spec or of a model's overrides makes ----------------------
    def sparsities(self, key: str, v: Any) -> tuple[float, ...]:
        vals = self.list_(key, v, lambda k, x: self.num(k, x, 0.0, 1.0, hi_open=True),
                          nonempty=False)
        return tuple(sorted({float(x) for x in vals if x > 0}))

    def seeds(self, key: str, v: Any) -> tuple[int, ...]:
        return self.list_(key, v, lambda k, x: self.int_(k, x, 0, self.seed_max))

    def formats(self, key: str, v: Any) -> tuple[str, ...]:
        return self.list_(key, v, lambda k, x: self.choice(k, x, [*self.reg["formats"], "auto"]))

    def values(self, key: str, v: Any) -> tuple[str, ...]:
        return self.list_(key, v, lambda k, x: self.choice(k, x, list(self.reg["values"])))

    def engines(self, key: str, v: Any) -> tuple[str, ...]:
        if v == "all":
            return ("all",)
        return self.list_(key, v, lambda k, x: self.choice(k, x, [*self.reg["engines"], "all"]))

    def batches(self, key: str, v: Any) -> tuple[int, ...]:
        return self.list_(key, v, lambda k, x: self.int_(k, x, 1))

    def threads(self, key: str, v: Any) -> tuple[int, ...]:
        return self.list_(key, v, lambda k, x: self.int_(k, x, 1, self.cores))

    def layers(self, key: str, v: Any) -> str:
        return self.choice(key, v, ["default", "all"])

    def finetune_steps(self, key: str, v: Any) -> int:
        return self.int_(key, v, 0)

    def finetune(self, key: str, d: Any) -> tuple[tuple[str, Any], ...]:
        """A ``finetune`` mapping checked (the rules of :class:`prunebench.train.Finetune`) as
        sorted (key, value) pairs; null is no settings."""
        from ..train import Finetune

        d = self.keys(key, d or {}, FINETUNE_KEYS)
        for k, v in d.items():
            try:
                Finetune(**{FINETUNE_FIELDS[k]: v}).checked()
            except BadInputError as e:  # "NAME: got V, expected WHAT": name the spec's key
                self.fail(f"{key}.{k}", v, "expected" + str(e).split(", expected", 1)[-1])
        return tuple(sorted(d.items()))

    def format_options(self, key: str, d: Any) -> dict[str, dict[str, Any]]:
        """``{format: {option: value}}``, each format judging its own options on a 16 x 16
        matrix; ``lowrank`` gets ``energy: 0.9`` unless given (it needs a rank or an energy)."""
        formats = self.reg["formats"]
        self.keys(key, d or {}, tuple(formats))
        out = {}
        for fmt, opts in (d or {}).items():
            cls = formats.get(fmt)
            allowed = tuple(cls.option_defaults)
            if not allowed:
                self.fail(f"{key}.{fmt}", opts, f"format {fmt!r} takes no options")
            self.keys(f"{key}.{fmt}", opts, allowed)
            o = {k: list(val) if isinstance(val, tuple) else val for k, val in opts.items()}
            try:
                cls._check_options((16, 16), **{**cls.option_defaults,
                                                **{k: tuple(x) if isinstance(x, list) else x
                                                   for k, x in o.items()}})
            except BadInputError as e:
                self.refuse(f"{key}.{fmt}: {e}")
            out[fmt] = o
        for fmt in formats:  # lowrank needs a rank or an energy: its default one
            if formats.get(fmt).one_of_default:
                out.setdefault(fmt, dict(formats.get(fmt).one_of_default))
        return out


FINETUNE_KEYS = ("lr", "batch", "epochs", "schedule", "early_stop", "validation")
#: the spec's finetune keys -> :class:`prunebench.train.Finetune`'s fields
FINETUNE_FIELDS = {"lr": "lr", "batch": "batch_size", "epochs": "epochs",
                   "schedule": "lr_schedule", "early_stop": "early_stop",
                   "validation": "validation"}


def registries() -> dict[str, Any]:
    """The registries a spec's names are looked up in (engines and models registered at run
    time, e.g. by a test or a worker setup, included)."""
    from .. import engines, formats, pruning, zoo
    from . import controls  # noqa: F401  (registers the matched controls)

    return {"models": zoo.MODELS, "methods": pruning.METHODS, "scopes": pruning.SCOPES,
            "schedules": pruning.SCHEDULES, "formats": formats.FORMATS,
            "values": formats.VALUE_ENCODINGS, "engines": engines.ENGINES}


def trained(name: str) -> bool:
    """Whether zoo model ``name`` is trained (has an accuracy to lose when quantized)."""
    from .. import zoo

    return zoo.get_spec(name).trained
