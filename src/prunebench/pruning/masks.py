"""Applying masks: zeros written into the weights, kept at zero while fine-tuning.

A mask is a bool tensor shaped like its parameter, True = keep. Pruning writes zeros into the
parameter in place; nothing else is stored (no ``weight_orig``, no float mask, no masked copy),
so a pruned model is an ordinary ``nn.Module`` whose pruned weights are exactly 0.
"""
from __future__ import annotations

import torch
from torch import nn

Masks = dict[str, torch.Tensor]


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Write zeros into every parameter where its mask is False (in place)."""
    for name, mask in masks.items():
        model.get_parameter(name).masked_fill_(~mask, 0.0)


class MaskKeeper:
    """Keeps masked weights at exactly zero during training.

    A gradient hook zeroes the gradient of every masked weight, and :meth:`after_step`
    (pass it to ``train.fit(after_step=...)``) writes the zeros again after each optimizer step,
    because Adam's running moments can still move a weight whose mask changed mid-training.
    ``masks`` is read at call time, so a schedule may replace masks while training runs.

    Use as a context manager so the hooks do not outlive the fine-tuning::

        with MaskKeeper(model, masks) as keeper:
            fit(model, data, steps=100, after_step=keeper.after_step)
    """

    def __init__(self, model: nn.Module, masks: Masks):
        self.model, self.masks = model, masks
        self._handles: list = []

    def __enter__(self) -> "MaskKeeper":
        for name in self.masks:
            param = self.model.get_parameter(name)
            self._handles.append(param.register_hook(
                lambda grad, name=name: grad.masked_fill(~self.masks[name], 0.0)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def after_step(self) -> None:
        apply_masks(self.model, self.masks)
