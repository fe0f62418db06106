"""Checks of user-supplied pruning arguments.

Each check names the argument, the value given and what is allowed, and raises
:class:`~prunebench.errors.BadInputError` (never ``assert``: that vanishes under ``python -O``).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import BadInputError


def check_sparsity(sparsity: Any) -> float:
    """``sparsity`` as a float in [0, 1)."""
    ok = isinstance(sparsity, (int, float)) and not isinstance(sparsity, bool)
    if not ok or not math.isfinite(sparsity) or not 0.0 <= sparsity < 1.0:
        raise BadInputError(f"sparsity={sparsity!r} should be a float in [0, 1)")
    return float(sparsity)


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (bools are refused: ``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInputError(f"{name}={value!r} should be an integer >= {minimum}")
    return value


def check_nm(n: Any, m: Any) -> tuple[int, int]:
    """An N:M pattern: keep ``n`` of every ``m`` consecutive weights, 1 <= n < m."""
    m = check_int("m", m, 2)
    n = check_int("n", n, 1)
    if n >= m:
        raise BadInputError(f"n={n} with m={m}: an N:M pattern needs 1 <= n < m")
    return n, m


def check_block(block: Any) -> tuple[int, int]:
    """A block shape ``(rows, cols)`` of two positive ints."""
    ok = isinstance(block, (tuple, list)) and len(block) == 2 and all(
        isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in block)
    if not ok:
        raise BadInputError(f"block={block!r} should be a pair of positive integers (rows, cols),"
                            " e.g. (4, 4)")
    return int(block[0]), int(block[1])


NORMS = {"l1": 1.0, "l2": 2.0}


def check_norm(norm: Any) -> float:
    """The exponent ``p`` of a norm name (``"l1"`` or ``"l2"``)."""
    if norm not in NORMS:
        raise BadInputError(f"norm={norm!r} should be one of {', '.join(NORMS)}")
    return NORMS[norm]


def check_calibration(calibration: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``calibration`` as ``(x, y)`` tensors with the same number of rows, or None."""
    if calibration is None:
        return None
    ok = (isinstance(calibration, (tuple, list)) and len(calibration) == 2
          and all(isinstance(t, torch.Tensor) for t in calibration))
    if not ok:
        raise BadInputError(f"calibration={type(calibration).__name__} should be a pair of "
                            "tensors (x, y), e.g. prunebench.train.calibration_batch(data)")
    x, y = calibration
    if len(x) != len(y) or len(x) == 0:
        raise BadInputError(f"calibration: x has {len(x)} rows and y has {len(y)}; "
                            "they should be equal and non-zero")
    return x, y


def check_rewind_state(state: Any, model_state: dict[str, torch.Tensor]) -> dict:
    """A state dict with the same keys and shapes as the model's."""
    if not isinstance(state, dict):
        raise BadInputError(f"rewind_state={type(state).__name__} should be a state_dict "
                            "(dict name -> tensor), e.g. the init state from "
                            "prunebench.zoo.load(name, return_init=True)")
    missing = sorted(set(model_state) - set(state))
    extra = sorted(set(state) - set(model_state))
    if missing or extra:
        raise BadInputError(f"rewind_state: keys differ from the model's state_dict "
                            f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for key, value in model_state.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise BadInputError(f"rewind_state[{key!r}] has shape {tuple(state[key].shape)}; "
                                f"the model's is {tuple(value.shape)}")
    return state


#: schedules that read ``rounds`` and ``rewind_state``
ROUND_SCHEDULES = ("iterative", "iterative-linear", "rewind")
REWIND_SCHEDULES = ("rewind",)


def check_schedule_options(schedule: str, rounds: Any, rewind_state: Any) -> int:
    """Refuse ``rounds``/``rewind_state`` given to a schedule that does not use them (they
    would be ignored in silence); returns the rounds to run (default 3)."""
    if rounds is not None:
        if schedule not in ROUND_SCHEDULES:
            raise BadInputError(f"rounds={rounds!r} is not used by schedule={schedule!r}; "
                                f"allowed only with schedule {', '.join(ROUND_SCHEDULES)}")
        rounds = check_int("rounds", rounds, 1)
    if rewind_state is not None and schedule not in REWIND_SCHEDULES:
        raise BadInputError(f"rewind_state is not used by schedule={schedule!r}; allowed "
                            f"only with schedule {', '.join(REWIND_SCHEDULES)}")
    return 3 if rounds is None else rounds
