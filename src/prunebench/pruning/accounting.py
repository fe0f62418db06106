"""Counting parameters and multiply-accumulates (MACs), dense and with zeros skipped.

MACs are counted per prunable weight from one forward pass on an example input, with forward
hooks that read the real output shapes (so strides, padding, dilation, groups and any reshapes
in ``forward`` are accounted for as they happen), then divided by the example's leading
(batch) dimension: the figures are per sample.

- Linear: ``out_elems * in_features`` dense; ``out_elems / out_features * nnz(W)`` nonzero.
- Conv: ``out_elems * in/groups * prod(kernel)`` dense (depthwise included);
  ``out_positions * nnz(W)`` nonzero, where ``out_positions = out_elems / out_channels``. The
  nonzero count ignores padding: a kept weight that meets a padded zero is still counted, which
  is what a dense-in-space sparse kernel does.
- RNN/GRU/LSTM: every weight matrix is applied once per time step, so
  ``time_steps * numel(W)`` dense and ``time_steps * nnz(W)`` nonzero for each ``weight_ih``,
  ``weight_hh`` (and ``weight_hr``), per layer and direction. Gate nonlinearities and the
  element-wise products are not MACs of a weight and are not counted.
- MultiheadAttention: each query/key/value projection once per query/key/value token
  (``tokens * numel`` dense, ``tokens * nnz`` nonzero, per gate of ``in_proj_weight``); its
  ``out_proj`` once per query token, also when the module's fused forward reads the weight
  without calling ``out_proj`` (no hook of its own fires then). The attention products
  (``QK^T``, ``AV``) multiply activations, not weights, and are not counted.

Only these layers' MACs are counted; pooling, activations, additions and normalisation are not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .targets import ATTENTION_TYPES, RNN_TYPES, layer_kind, weights_of


@dataclass(frozen=True)
class MacCount:
    """Per-sample MACs of each prunable weight (by parameter name), dense and nonzero."""

    dense: dict[str, float]
    nonzero: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.dense.values())

    @property
    def total_nonzero(self) -> float:
        return sum(self.nonzero.values())

    @property
    def theoretical_speedup(self) -> float | None:
        """``total / total_nonzero``: the speedup if every skipped MAC were free."""
        return self.total / self.total_nonzero if self.total_nonzero else None


def _nnz(model: nn.Module, name: str, masks: dict[str, torch.Tensor] | None) -> int:
    if masks is not None and name in masks:
        return int(masks[name].sum())
    return int(torch.count_nonzero(model.get_parameter(name).detach()))


def _gate_nnz(model: nn.Module, w, masks: dict[str, torch.Tensor] | None) -> list[int]:
    """Nonzeros of each gate of a weight (the mask's count where one is given)."""
    t = masks[w.name] if masks is not None and w.name in masks else \
        model.get_parameter(w.name).detach()
    return [int(torch.count_nonzero(g)) for g in w.as_gates(t)]


def _first_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x:
        return _first_tensor(x[0])
    if isinstance(x, dict) and x:
        return _first_tensor(next(iter(x.values())))
    raise TypeError(f"no tensor in {type(x).__name__}")


def _time_steps(module: nn.Module, x: Any) -> int:
    """Sequence steps summed over the batch: how often each weight matrix is applied."""
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return int(x.data.shape[0])
    if x.dim() == 2:  # unbatched [T, features]
        return int(x.shape[0])
    return int(x.shape[0] * x.shape[1])


def _as_sample(value: int, batch: int) -> float:
    return value // batch if value % batch == 0 else value / batch


@torch.no_grad()
def count_macs(model: nn.Module, example_input: Any,
               masks: dict[str, torch.Tensor] | None = None) -> MacCount:
    """Per-sample MACs of every Linear/Conv/RNN weight, dense and with zero weights skipped.

    Parameters
    ----------
    model : the network; run once in eval mode (its mode is restored).
    example_input : what ``model(example_input)`` takes; a tuple is unpacked as positional
        arguments. Its leading dimension is the batch the counts are divided by.
    masks : optional {parameter name: bool keep-mask}; where given, the mask's count replaces
        the weight's nonzero count.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> count_macs(m, torch.zeros(3, 8)).total
    40
    """
    seen: dict[str, list[tuple[str, Any]]] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any], Any], None]:
        def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                   output: Any) -> None:
            if isinstance(module, RNN_TYPES):
                seen.setdefault(name, []).append(("steps", _time_steps(module, args[0])))
            elif isinstance(module, ATTENTION_TYPES):
                qkv = list(args[:3]) + [kwargs[k] for k in ("query", "key", "value")[len(args):]
                                        if k in kwargs]
                seen.setdefault(name, []).append(
                    ("tokens", [t.numel() // t.shape[-1] for t in qkv]))
            else:
                out = output if isinstance(output, torch.Tensor) else _first_tensor(output)
                seen.setdefault(name, []).append(("out", out.numel()))
        return record

    handles = [m.register_forward_hook(hook(n), with_kwargs=True)
               for n, m in model.named_modules() if layer_kind(m) is not None]
    was_training = model.training
    model.eval()
    try:
        args = example_input if isinstance(example_input, tuple) else (example_input,)
        model(*args)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    batch = int(_first_tensor(example_input).shape[0])
    for name, calls in list(seen.items()):
        # nn.MultiheadAttention's fused forward reads out_proj.weight without calling out_proj
        out_proj = f"{name}.out_proj" if name else "out_proj"
        if calls[0][0] == "tokens" and out_proj not in seen:
            mod = model.get_submodule(out_proj)
            seen[out_proj] = [("out", c[0] * mod.out_features) for _, c in calls]

    dense, nonzero = {}, {}
    for module_name, calls in seen.items():
        module = model.get_submodule(module_name)
        for w in weights_of(model, module_name):
            weight = model.get_parameter(w.name)
            nnz = _nnz(model, w.name, masks)
            d = z = 0
            for _, count in calls:
                if isinstance(module, ATTENTION_TYPES):
                    gate_nnz = _gate_nnz(model, w, masks)
                    which = w.name.rpartition(".")[2][0]          # q_proj_weight -> q
                    tokens = count if w.gates == 3 else [count["qkv".index(which)]]
                    rows = weight.numel() // w.gates
                    d += sum(t * rows for t in tokens)
                    z += sum(t * g for t, g in zip(tokens, gate_nnz))
                elif isinstance(module, RNN_TYPES):
                    d += count * weight.numel()
                    z += count * nnz
                else:
                    rows = w.matrix(weight).shape[0]  # out_features / out_channels
                    positions = count // rows
                    d += positions * weight.numel()
                    z += positions * nnz
            dense[w.name], nonzero[w.name] = _as_sample(d, batch), _as_sample(z, batch)
    return MacCount(dense, nonzero)


def dead_units(weight: torch.Tensor, gates: int = 1) -> dict[str, int]:
    """Units a pruned weight disconnects.

    ``dead_out`` of ``outputs``: output neurons / channels with no incoming weight left (the
    row of every gate is zero: the unit only passes its bias on). ``dead_in`` of ``inputs``:
    input features / channels with no outgoing weight left in this layer (the unit feeding it
    is never read by it). A weight is ``[out (x gates), in, *kernel]``; a mask works as well.

    >>> w = torch.tensor([[0., 1., 0.], [0., 0., 0.]])
    >>> dead_units(w)
    {'dead_out': 1, 'outputs': 2, 'dead_in': 2, 'inputs': 3}
    """
    alive = weight.detach() != 0
    rows = alive.reshape(gates, alive.shape[0] // gates, -1).any(dim=2).any(dim=0)
    cols = alive.transpose(0, 1).reshape(alive.shape[1], -1).any(dim=1)
    return {"dead_out": int((~rows).sum()), "outputs": int(rows.numel()),
            "dead_in": int((~cols).sum()), "inputs": int(cols.numel())}


def sparsity_report(model: nn.Module, example_input: Any = None,
                    masks: dict[str, torch.Tensor] | None = None,
                    reference: nn.Module | None = None) -> dict:
    """Per-layer and total parameters, nonzeros, MACs and sparsity, as JSON-able data.

    Parameters
    ----------
    model : the (pruned) network.
    example_input : input for one forward pass (see :func:`count_macs`); without it the MAC
        fields are None.
    masks : optional keep-masks; a masked weight's nonzero count is its mask's count.
    reference : the dense model before structural pruning. Dense figures (``params``,
        ``macs``) then come from it, nonzero figures from ``model``, matched by name, so
        removed channels count as removed weights.

    Returns
    -------
    ``{"layers": [{name, module, kind, shape, params, nonzero, sparsity, macs,
    macs_nonzero, dead_out, outputs, dead_in, inputs}], "totals": {params, nonzero, sparsity,
    macs, macs_nonzero, theoretical_speedup}}`` (dead units: :func:`dead_units`). Layer rows
    cover prunable weights only; ``totals.params`` and ``totals.nonzero`` count every parameter
    (biases and norms too), while MAC totals are sums over the layer rows.
    """
    dense_model = reference if reference is not None else model
    macs = macs_dense = None
    if example_input is not None:
        macs = count_macs(model, example_input, masks)
        macs_dense = count_macs(dense_model, example_input) if reference is not None else macs

    layers = []
    for module_name, module in dense_model.named_modules():
        if layer_kind(module) is None:
            continue
        for w in weights_of(dense_model, module_name):
            params = dense_model.get_parameter(w.name).numel()
            try:
                now = model.get_parameter(w.name)
            except AttributeError:  # the whole layer was removed
                now = None
            nnz = _nnz(model, w.name, masks) if now is not None else 0
            kept = (masks[w.name] if masks is not None and w.name in masks else now) \
                if now is not None and now.dim() >= 2 else None
            dead = dead_units(w.matrix(kept), w.gates) if kept is not None else {}
            layers.append({
                "name": w.name, "module": module_name, "kind": w.kind,
                "shape": list(now.shape) if now is not None else [0],
                "params": params, "nonzero": nnz,
                "sparsity": 1.0 - nnz / params if params else 0.0,
                "macs": macs_dense.dense.get(w.name) if macs_dense else None,
                "macs_nonzero": macs.nonzero.get(w.name, 0) if macs else None,
                **dead,
            })

    total_params = sum(p.numel() for p in dense_model.parameters())
    total_nonzero = 0
    for name, p in model.named_parameters():
        total_nonzero += _nnz(model, name, masks)
    totals = {
        "params": total_params, "nonzero": total_nonzero,
        "sparsity": 1.0 - total_nonzero / total_params if total_params else 0.0,
        "macs": macs_dense.total if macs_dense else None,
        "macs_nonzero": macs.total_nonzero if macs else None,
        "theoretical_speedup": (macs_dense.total / macs.total_nonzero
                                if macs_dense and macs and macs.total_nonzero else None),
    }
    return {"layers": layers, "totals": totals}
