"""The registry of the user's own models (``--model package.module:factory``, an ``.onnx``
file, a graph model file): their records in this process and, through the environment
variable ``PRUNEBENCH_USER_MODELS``, in the child processes it starts.

The zoo (:func:`prunebench.zoo.get_spec`, :func:`prunebench.zoo.task_metrics`) and the model
files ask it whether a name is the user's. It sits below both: building a zoo entry from a
record takes the runtime (an ONNX graph loads as a graph model), so
:mod:`prunebench.usermodel`, above the zoo and the runtime, installs that builder here
(:func:`set_builder`) when it is imported, which ``import prunebench`` does in every process.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from ..errors import PrunebenchError

ENV = "PRUNEBENCH_USER_MODELS"
#: what a user model's quality is reported as (its fidelity to the dense model)
FIDELITY = ("fidelity_top1", "fidelity_cosine", "fidelity_max_abs")
#: records of the models registered in this process {name: record}
USER_MODELS: dict[str, dict[str, Any]] = {}
#: builds and registers the zoo entry of a record (set by :mod:`prunebench.usermodel`)
_builder: Callable[[dict[str, Any]], str] | None = None


def env_records() -> dict[str, dict[str, Any]]:
    """The records the parent process registered ({} when none, or unreadable)."""
    try:
        records = json.loads(os.environ.get(ENV, "{}"))
    except ValueError:
        return {}
    return records if isinstance(records, dict) else {}


def is_user_model(name: object) -> bool:
    return isinstance(name, str) and (name in USER_MODELS or name in env_records())


def set_builder(builder: Callable[[dict[str, Any]], str]) -> None:
    """``builder(record)`` registers the record's model as a zoo entry (without the checks
    the command line ran in the parent) and returns its name."""
    global _builder
    _builder = builder


def register_from_env(name: str) -> None:
    """Register ``name`` from the parent's record (a child process): no checks repeated."""
    rec = env_records().get(name)
    if rec is None or name in USER_MODELS:
        return
    if _builder is None:
        raise PrunebenchError(f"model {name!r}: a user model of the parent process, but "
                              "prunebench.usermodel, which builds it, was not imported")
    _builder(rec)


def remember(name: str, rec: dict[str, Any]) -> None:
    """Record ``rec`` as user model ``name`` here and for the child processes."""
    USER_MODELS[name] = rec
    os.environ[ENV] = json.dumps(dict(env_records(), **{name: rec}))
