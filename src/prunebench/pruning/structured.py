"""Structured pruning: output channels, filters and hidden units physically removed.

Channels are scored here (the L1 or L2 norm of each output channel's weights) and removed by
the dependency graph of ``torch-pruning``, which shrinks every coupled tensor with them: the next
layer's input, BatchNorm statistics, the Linear after a flatten, both sides of a residual add,
a depthwise convolution's channels.

A dependency *group* is the set of layers whose channels must go together (a residual add
couples every convolution that feeds it). A group is pruned only when every layer whose
outputs it shrinks was selected, and never when one of them is the model's last layer (its
outputs are the model's outputs). A group's channel score is the norm over all the weight rows
it removes, and at least one channel of every group survives.

Scope ``layer`` removes ``round(sparsity * channels)`` channels of every group; ``global``
ranks the raw norms of all groups together, so layers with a small fan-in (small norms) lose
more channels. Channel counts are whole numbers, so the achieved fraction is reported, not
assumed.

RNN hidden units are not supported: torch-pruning has no GRU/RNN handler and its LSTM handler
covers only single-layer LSTMs, so asking for them raises BadInputError.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import BadInputError
from .select import lowest_units
from .targets import CONV_TYPES, RNN_TYPES, layer_kind, prunable_layers

ROOT_TYPES = (nn.Linear, *CONV_TYPES)


def out_channels(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, CONV_TYPES):
        return module.out_channels
    raise BadInputError(f"{type(module).__name__}: has no output channels to remove; allowed: "
                        "nn.Linear, nn.Conv1d/2d/3d")


def check_channel_layers(model: nn.Module, layer_names: list[str], explicit: bool) -> list[str]:
    """The selected layers whose output channels may be removed.

    RNNs raise BadInputError; the model's last prunable layer is refused when asked for
    explicitly and dropped silently from the default selection.
    """
    for name in layer_names:
        module = model.get_submodule(name)
        if isinstance(module, RNN_TYPES):
            raise BadInputError(
                f"method='channel' cannot remove hidden units of {name!r} "
                f"(nn.{type(module).__name__}): torch-pruning has no GRU/RNN support and handles "
                "only single-layer LSTMs; use method 'magnitude', 'block' or 'nm' for RNN layers, "
                "or pass layers= without them")
    last = prunable_layers(model)[-1]
    if last in layer_names:
        if explicit:
            raise BadInputError(
                f"layers: {last!r} is the model's last layer; removing its output channels "
                "would change the model's outputs; allowed: the other prunable layers")
        layer_names = [n for n in layer_names if n != last]
    if not layer_names:
        raise BadInputError("method='channel' has no layer whose output channels it may "
                            "remove (the last layer is never shrunk); pass layers= with "
                            "hidden layers")
    return layer_names


def _channel_scores(group, p: float) -> torch.Tensor:
    """Norm of all weight rows a group removes, per root channel."""
    import torch_pruning as tp

    out_fns = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)
    root_dep, root_idxs = group[0]
    total = torch.zeros(len(root_idxs))
    for item in group:
        dep, idxs = item
        layer = dep.target.module
        if dep.handler not in out_fns or not isinstance(layer, ROOT_TYPES):
            continue
        if item.root_idxs is None or any(r is None for r in item.root_idxs):
            continue
        rows = layer.weight.detach()[list(idxs)].flatten(1).abs().pow(p).sum(1)
        total.scatter_add_(0, torch.tensor(item.root_idxs), rows.float())
    return total.pow(1.0 / p)


class ChannelPruner:
    """Removes output channels of ``layer_names`` from ``model`` (in place) with torch-pruning.

    ``prune_to(sparsity)`` may be called repeatedly with growing sparsity (iterative
    schedules); ``sparsity`` is always relative to the channel counts at construction.
    """

    def __init__(self, model: nn.Module, layer_names: list[str], example_input: Any,
                 p: float, scope: str):
        self.model, self.example_input = model, example_input
        self.p, self.scope = p, scope
        self.masks: dict[str, torch.Tensor] = {}  # removed weights leave nothing to mask
        #: {module: why its output channels cannot be removed}, for the report's ``skipped``
        self.skipped = self._unshrinkable(layer_names)
        self.layer_names = [n for n in layer_names if n not in self.skipped]
        self.initial = {n: out_channels(model.get_submodule(n)) for n in self.layer_names}

    def _graph(self):
        import torch_pruning as tp

        was_training = self.model.training
        self.model.eval()
        try:
            # forward_fn: without one, torch-pruning traces inside a bare `except:` that
            # swallowed a Ctrl-C arriving during the trace (the study then ran on to the end)
            return tp.DependencyGraph().build_dependency(
                self.model, example_inputs=self.example_input,
                forward_fn=lambda model, x: model(x))
        finally:
            self.model.train(was_training)

    def _unshrinkable(self, layer_names: list[str]) -> dict[str, str]:
        """The selected layers no channel group can shrink, each with the reason."""
        chosen = set(layer_names)
        reasons = {n: f"{type(self.model.get_submodule(n)).__name__}: method='channel' removes "
                      "output channels of Linear and Conv layers only"
                   for n in layer_names
                   if not isinstance(self.model.get_submodule(n), ROOT_TYPES)}
        graph = self._graph()
        names = {m: n for n, m in self.model.named_modules()}
        seen = set()
        for group in graph.get_all_groups(ignored_layers=[], root_module_types=ROOT_TYPES):
            outs = [names[dep.target.module] for dep, _ in group
                    if dep.target.module in names and layer_kind(dep.target.module) is not None
                    and graph.is_out_channel_pruning_fn(dep.handler)]
            seen.update(outs)
            mine = [o for o in outs if o in chosen and o not in reasons]
            grouped = [(names[dep.target.module], dep.target.module.groups) for dep, _ in group
                       if _is_grouped(dep.target.module)]
            others = [o for o in dict.fromkeys(outs) if o not in chosen]
            if grouped:
                why = (f"its output channels are coupled with grouped convolution {grouped[0][0]} "
                       f"(groups={grouped[0][1]}), whose channel groups cannot be kept aligned")
            elif others:
                why = (f"its output channels are coupled (residual add, concatenation or shared "
                       f"input) with {', '.join(others)}, which is not selected or is the model's "
                       "last layer; select every layer of the group to shrink it")
            else:
                continue
            reasons.update({o: why for o in mine})
        for n in layer_names:
            if n not in seen and n not in reasons:
                reasons[n] = "torch-pruning found no output channels it can remove"
        return {n: reasons[n] for n in layer_names if n in reasons}

    def _groups(self):
        chosen = set(self.layer_names)
        ignored = [m for name, m in self.model.named_modules()
                   if layer_kind(m) is not None and name not in chosen]
        graph = self._graph()
        names = {m: n for n, m in self.model.named_modules()}
        groups = []
        for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=ROOT_TYPES):
            root = group[0][0].target.module
            if _has_grouped_conv(group):
                continue  # grouped (not depthwise) convolutions need group-aligned indices
            groups.append((names[root], root, group[0][0].handler, _channel_scores(group, self.p)))
        return graph, groups

    def prune_to(self, sparsity: float) -> None:
        graph, groups = self._groups()
        if not groups:
            return
        removals = (self._global(groups, sparsity) if self.scope == "global"
                    else self._per_layer(groups, sparsity))
        for (name, root, handler, _), removed in zip(groups, removals):
            idxs = torch.nonzero(removed).flatten().tolist()
            if not idxs:
                continue
            pruning_group = graph.get_pruning_group(root, handler, idxs=idxs)
            if graph.check_pruning_group(pruning_group):
                pruning_group.prune()

    def _start(self, name: str, root: nn.Module) -> int:
        return self.initial.get(name, out_channels(root))

    def _per_layer(self, groups, sparsity):
        out = []
        for name, root, _, scores in groups:
            c0 = self._start(name, root)
            keep = max(1, c0 - round(sparsity * c0))
            drop = max(0, len(scores) - keep)
            out.append(lowest_units(scores, torch.ones(len(scores), dtype=torch.long), drop))
        return out

    def _global(self, groups, sparsity):
        c0 = sum(self._start(name, root) for name, root, _, _ in groups)
        now = sum(len(scores) for *_, scores in groups)
        drop = max(0, round(sparsity * c0) - (c0 - now))
        scores = torch.cat([s for *_, s in groups])
        removed = lowest_units(scores, torch.ones(len(scores), dtype=torch.long), drop)
        out, start = [], 0
        for *_, s in groups:
            part = removed[start:start + len(s)].clone()
            start += len(s)
            if part.all():  # never empty a layer: keep its best channel
                part[torch.argmax(s)] = False
            out.append(part)
        return out

    def achieved(self) -> float:
        """Fraction of the selected layers' output channels removed so far."""
        before = sum(self.initial.values())
        after = sum(out_channels(self.model.get_submodule(n)) for n in self.layer_names)
        return 1.0 - after / before if before else 0.0


def _is_grouped(m: nn.Module) -> bool:
    """A grouped convolution that is not depthwise."""
    return isinstance(m, CONV_TYPES) and 1 < m.groups < m.in_channels


def _has_grouped_conv(group) -> bool:
    return any(_is_grouped(dep.target.module) for dep, _ in group)
