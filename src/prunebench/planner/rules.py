"""The planner's rules for one layer: which layers are left dense without timing, what a
layer's formats cost in bytes, and which measured candidate wins."""
from __future__ import annotations

from typing import Any

from torch import nn

#: a sparse format must beat dense by this fraction to replace it in a layer (timing noise
#: on a shared machine is a few percent; a wrong sparse choice can cost far more)
DENSE_MARGIN = 0.03
#: candidates within this fraction of the fastest count as equally fast (the smaller wins)
TIE = 0.02


def fastest(times: dict[str, float], nbytes: dict[str, int]) -> str:
    """The layer's fastest candidate, where "faster" must exceed timing noise: a sparse format
    replaces dense only when it is more than ``DENSE_MARGIN`` faster, and among candidates
    within ``TIE`` of the fastest the smallest wins."""
    best = min(times.values())
    near = [f for f, t in times.items() if t <= best * (1 + TIE)]
    pick = min(near, key=lambda f: (nbytes.get(f, 0), times[f]))
    if "dense" in times and pick != "dense" and times[pick] > times["dense"] * (1 - DENSE_MARGIN):
        return "dense"
    return pick


#: the largest block a format stores whole (BSR up to 16 x 16): the fewest index bytes a
#: format can spend is one byte per such block of nonzeros
MAX_BLOCK = 256


def left_dense(module: nn.Module, zeros: int, total: int, args: tuple | None,
               values: str) -> str | None:
    """Why a layer stays dense without timing any format, or None when it is a candidate."""
    from ..runtime.compile import why_dense_only

    problem = why_dense_only(module)
    if problem:
        return problem
    if zeros == 0:
        return "not pruned (no zero weights)"
    if args is None:
        return "not called by the model's forward"
    if too_few_zeros(zeros, total, values):
        return (f"{zeros} zero weights of {total}: too few for any format to be smaller "
                "than dense (not encoded)")
    return None


def too_few_zeros(zeros: int, total: int, values: str) -> bool:
    """True when no sparse format can store the weights in fewer bytes than dense: every
    format keeps each nonzero value and at least one bit per weight (bitmap) or one index byte
    per block of up to ``MAX_BLOCK`` nonzeros, which costs more than the zeros save. Such a
    layer (an unpruned layer with a few exact zeros from initialisation) is not encoded."""
    from ..formats.values import value_nbytes

    nnz = total - zeros
    return zeros * value_nbytes(values) <= min(total / 8, nnz / MAX_BLOCK)


def dense_bytes(module: nn.Module, values: str) -> int:
    """Bytes of a module's weight matrices stored dense in ``values`` (as the runtime counts
    them: conv weights as out x in*k*k, int8 with a scale per row)."""
    from ..runtime.compile import dense_matrix_bytes

    return sum(dense_matrix_bytes((p.shape[0], p.numel() // p.shape[0]), values)
               for name, p in module.named_parameters() if "weight" in name)


def op_bytes(cm: Any) -> int:
    """Bytes of the weight matrices of a one-layer compiled model (biases not counted)."""
    return int(sum(r["bytes"] for r in cm.plan.values()))


def plan_bytes(layers: list[dict], p: dict[str, str]) -> int:
    """Bytes of the prunable layers' matrices under the plan ``p`` {layer: format}."""
    total = 0
    for lay in layers:
        f = p.get(lay["name"], "dense")
        total += lay["bytes"].get(f, lay["bytes"].get("dense", 0))
    return total
