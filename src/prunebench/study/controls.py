"""Controls a study compares pruning against.

Matched dense models
    For a zoo model ``M``, ``M-matched90`` is the same architecture made narrower so that its
    parameter count is the closest to ``M``'s nonzero count after pruning 90% of the weights the
    study prunes by default (every Linear/Conv/RNN but the first and the last; all of them when
    that leaves none). It is trained exactly like ``M`` (same :class:`~prunebench.zoo.models.
    TrainConfig`), so "prune M to 90%" can be compared with "train a model that small".
    Importing this module registers them in :data:`prunebench.zoo.MODELS`.

int8 dynamic quantization
    :func:`quantize_int8` applies ``torch.ao.quantization.quantize_dynamic`` to every Linear,
    LSTM and GRU (weights int8 with per-tensor scales, activations quantized on the fly;
    convolutions stay fp32): the usual compression baseline that does not prune.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import replace
from typing import Callable

import torch
from torch import nn

from .. import zoo
from ..zoo import architectures as A

MATCHED_SPARSITY = 0.9
SUFFIX = "-matched90"

# base zoo name -> (builder of the narrower model from one width, that width's range, what it is)
_FAMILIES: dict[str, tuple[Callable[[int], nn.Module], range, Callable[[int], str]]] = {
    "mnist1d-mlp": (lambda w: A.MLP1D(hidden=w), range(2, 101),
                    lambda w: f"MLP 40-{w}-{w}-10, residual around layer 2"),
    "mnist1d-cnn": (lambda w: A.CNN1D(channels=w), range(2, 26),
                    lambda w: f"3 x Conv1d ({w} ch, stride 2) + Linear"),
    "mnist1d-gru": (lambda w: A.RNN1D("gru", w, True), range(2, 33),
                    lambda w: f"bidirectional GRU ({w} units) + Linear"),
    "mnist1d-lstm": (lambda w: A.RNN1D("lstm", w, False), range(2, 65),
                     lambda w: f"LSTM ({w} units) + Linear"),
    "digits-lenet300": (lambda w: A.MLP([64, 3 * w, w, 10]), range(2, 101),
                        lambda w: f"MLP 64-{3 * w}-{w}-10"),
}


def pruned_nonzero(model: nn.Module, sparsity: float = MATCHED_SPARSITY) -> int:
    """Parameters left when ``sparsity`` of the default-selected layers' weights are removed."""
    from ..pruning import select_layers
    from ..pruning.targets import prunable_weights

    prunable = sum(w.tensor(model).numel()
                   for w in prunable_weights(model, select_layers(model, None)))
    return zoo.count_params(model) - round(sparsity * prunable)


def matched_width(base: str) -> tuple[int, int, int]:
    """(width, its parameter count, the target) of the matched control of ``base``."""
    build, widths, _ = _FAMILIES[base]
    target = pruned_nonzero(zoo.get_spec(base).build())
    best = min(widths, key=lambda w: (abs(zoo.count_params(build(w)) - target), w))
    return best, zoo.count_params(build(best)), target


def control_name(base: str) -> str:
    return base + SUFFIX


def _register() -> None:
    for base, (build, _, describe) in _FAMILIES.items():
        name = control_name(base)
        if name in zoo.MODELS or base not in zoo.MODELS:
            continue
        width, params, target = matched_width(base)
        spec = zoo.get_spec(base)
        zoo.MODELS.add(name, replace(
            spec, name=name, build=_at_width(build, width),
            description=(f"dense control: {describe(width)} ({params:,} params; {base} at "
                         f"{MATCHED_SPARSITY:.0%} sparsity keeps {target:,})")))


def _at_width(build: Callable[[int], nn.Module], width: int) -> Callable[[], nn.Module]:
    return lambda: build(width)


def matched_controls() -> list[str]:
    """Zoo models that have a matched dense control."""
    return [b for b in _FAMILIES if b in zoo.MODELS]


def control_base(name: str) -> str | None:
    """The model ``name`` is a matched control of, else None."""
    if name.endswith(SUFFIX) and name[:-len(SUFFIX)] in _FAMILIES:
        return name[:-len(SUFFIX)]
    return None


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with int8 dynamic quantization of its Linear/LSTM/GRU layers."""
    import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear, nn.LSTM, nn.GRU},
                                dtype=torch.qint8)


def quantized_layers(model: nn.Module) -> int:
    """How many modules of ``model`` (a quantized copy) hold int8 weights."""
    return sum(1 for m in model.modules() if "quantized" in type(m).__module__)


def state_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the file a quantized model is shipped as
    (safetensors cannot hold packed int8 parameters)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


_register()
