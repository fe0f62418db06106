"""Which weights of a model may be pruned, and how each is seen as matrices.

A prunable weight is the ``weight`` of an ``nn.Linear`` (or of a Hugging Face
``transformers.pytorch_utils.Conv1D``, GPT-2's linear layer, which stores it transposed as
``[in, out]``) or ``nn.Conv1d/2d/3d``, one of the
weight matrices of an ``nn.RNN/GRU/LSTM`` (``weight_ih_l*``, ``weight_hh_l*``, ``weight_hr_l*``,
with their ``_reverse`` twins), or the input projection of an ``nn.MultiheadAttention``
(``in_proj_weight``, or ``q/k/v_proj_weight`` when key and value have their own sizes; its
``out_proj`` is an ``nn.Linear`` of its own). Biases and normalisation parameters are never pruned.

A Parameter used by several modules (tied weights) is one prunable weight, named after its
first name in ``model.named_parameters()``: it gets one mask and one encoding.

Every prunable weight is viewed as a stack of 2-D matrices ``[gates, rows, fan_in]``:

- Linear ``[out, in]`` -> ``[1, out, in]``; Conv1D ``[in, out]`` -> its transpose ``[1, out, in]``
  (:meth:`PrunableWeight.matrix`), so rows are outputs and N:M groups run along fan-in for both;
- Conv ``[out, in/groups, *k]`` -> ``[1, out, in/groups * prod(k)]``;
- RNN gate weights ``[G*H, in]`` -> ``[G, H, in]`` with G = 3 (GRU), 4 (LSTM), 1 (RNN), so each
  gate is pruned as its own matrix and no block or N:M group straddles two gates;
- attention ``in_proj_weight`` ``[3E, E]`` -> ``[3, E, E]``: query, key and value, one gate each.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn

from ..errors import BadInputError

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
RNN_TYPES = (nn.RNN, nn.GRU, nn.LSTM)
ATTENTION_TYPES = (nn.MultiheadAttention,)
PRUNABLE_TYPES = (nn.Linear, *CONV_TYPES, *RNN_TYPES, *ATTENTION_TYPES)
_GATES = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1}
_RNN_WEIGHT = re.compile(r"weight_(ih|hh|hr)_l\d+(_reverse)?$")

DEFAULT_LAYERS_DOC = (
    "every nn.Linear (and transformers' Conv1D), nn.Conv1d/2d/3d, nn.RNN/GRU/LSTM and "
    "nn.MultiheadAttention except the "
    "first and the last one in definition order (model.named_modules()); all of them when that "
    "leaves none")


@dataclass(frozen=True)
class PrunableWeight:
    """One prunable parameter: its full name, its module and how it splits into gates."""

    name: str          # "fc2.weight", "rnn.weight_hh_l0_reverse"
    module_name: str   # "fc2", "rnn"
    kind: str          # "linear" | "conv" | "rnn" | "attention"
    gates: int         # matrices stacked along dim 0 (1 except GRU/LSTM gate weights)
    transposed: bool = False   # stored [in, out] (transformers' Conv1D)

    def tensor(self, model: nn.Module) -> torch.Tensor:
        return model.get_parameter(self.name)

    def matrix(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (shaped like the weight) with outputs first: ``[out (x gates), ...]``."""
        return tensor.t() if self.transposed else tensor

    def as_gates(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (shaped like the weight) viewed as ``[gates, rows, fan_in]``."""
        m = self.matrix(tensor)
        return m.reshape(self.gates, m.shape[0] // self.gates, -1)

    def from_gates(self, gates: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """The inverse of :meth:`as_gates`: ``gates`` back in the weight's ``shape``."""
        if self.transposed:
            return gates.reshape(shape[1], shape[0]).t()
        return gates.reshape(shape)


def hf_conv1d_type() -> type[nn.Module] | None:
    """``transformers.pytorch_utils.Conv1D`` when transformers is already imported (a model
    holding one must have imported it), else None: prunebench never imports transformers."""
    mod = sys.modules.get("transformers.pytorch_utils")
    return getattr(mod, "Conv1D", None)


def is_transposed_linear(module: nn.Module) -> bool:
    """Whether ``module`` is a transformers ``Conv1D``: ``y = x @ weight + bias``, weight
    ``[in, out]``."""
    conv1d = hf_conv1d_type()
    return conv1d is not None and isinstance(module, conv1d)


def layer_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear) or is_transposed_linear(module):
        return "linear"
    if isinstance(module, CONV_TYPES):
        return "conv"
    if isinstance(module, RNN_TYPES):
        return "rnn"
    if isinstance(module, ATTENTION_TYPES):
        return "attention"
    return None


def prunable_layers(model: nn.Module) -> list[str]:
    """Names of the model's prunable modules, in definition order."""
    return [name for name, mod in model.named_modules() if layer_kind(mod) is not None]


def weights_of(model: nn.Module, module_name: str) -> list[PrunableWeight]:
    """The prunable weights of one module (one for Linear/Conv, all gate matrices for RNNs)."""
    module = model.get_submodule(module_name)
    kind = layer_kind(module)
    if kind is None:
        raise BadInputError(f"layer {module_name!r}: {type(module).__name__} is not prunable")
    prefix = f"{module_name}." if module_name else ""
    if kind in ("linear", "conv"):
        return [PrunableWeight(prefix + "weight", module_name, kind, 1,
                               transposed=is_transposed_linear(module))]
    if kind == "attention":
        if module.in_proj_weight is not None:   # query, key and value stacked: one gate each
            return [PrunableWeight(prefix + "in_proj_weight", module_name, kind, 3)]
        return [PrunableWeight(f"{prefix}{p}_proj_weight", module_name, kind, 1) for p in "qkv"]
    gates = next(g for t, g in _GATES.items() if isinstance(module, t))
    out = []
    for pname, _ in module.named_parameters(recurse=False):
        if _RNN_WEIGHT.match(pname):
            # the LSTM projection weight_hr maps hidden -> proj and has no gates
            g = 1 if pname.startswith("weight_hr") else gates
            out.append(PrunableWeight(prefix + pname, module_name, kind, g))
    return out


def select_layers(model: nn.Module, layers: list[str] | tuple[str, ...] | str | None
                  ) -> list[str]:
    """Module names to prune, in definition order.

    ``layers=None`` means every prunable module (see :data:`DEFAULT_LAYERS_DOC`) except the
    first and the last one in definition order (``model.named_modules()``); all of them when
    that leaves none. ``layers="all"`` means all of them. A model without such modules raises
    BadInputError.
    """
    available = prunable_layers(model)
    if not available:
        raise BadInputError(
            f"model {type(model).__name__} has no prunable layers; allowed: modules of type "
            "nn.Linear, nn.Conv1d/2d/3d, nn.RNN, nn.GRU, nn.LSTM")
    if layers is None:
        return available[1:-1] or available
    if layers == "all":
        return available
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
        raise BadInputError(f"layers={layers!r} should be None, 'all' or a non-empty list of "
                            f"module names; prunable: {', '.join(available)}")
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise BadInputError(f"layers: {unknown[0]!r} is not a prunable module of "
                            f"{type(model).__name__}; prunable: {', '.join(available)}")
    chosen = set(layers)
    return [name for name in available if name in chosen]


def canonical_names(model: nn.Module) -> dict[str, str]:
    """{parameter name: the name ``model.named_parameters()`` gives that Parameter}: a tied
    Parameter's other names map to its first one; untied names map to themselves."""
    first: dict[int, str] = {}
    out = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        out[name] = first.setdefault(id(p), name)
    return out


def tied_names(model: nn.Module) -> dict[str, list[str]]:
    """{first name: [every name]} of the Parameters reachable under more than one name."""
    groups: dict[str, list[str]] = {}
    for name, first in canonical_names(model).items():
        groups.setdefault(first, []).append(name)
    return {k: v for k, v in groups.items() if len(v) > 1}


def prunable_weights(model: nn.Module, layer_names: list[str]) -> list[PrunableWeight]:
    """The prunable weights of ``layer_names``, each Parameter once: a weight tied between
    modules is named after its first name in ``model.named_parameters()`` (one mask)."""
    canonical = canonical_names(model)
    out, seen = [], set()
    for name in layer_names:
        for w in weights_of(model, name):
            first = canonical.get(w.name, w.name)
            if first in seen:
                continue
            seen.add(first)
            out.append(w if first == w.name else replace(w, name=first))
    return out
