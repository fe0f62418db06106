"""The PyTorch-side rewrites engine ``openvino`` makes before OpenVINO traces a pruned model:
BatchNorm folding, activation fusion, and the modules that stand for its own C++ operations
(``PlanarDepthwise`` -> ``DepthwiseConv``, ``ExpandDepthwise``, ``InvertedBlock``, and
``UnrolledLSTM``, an ``nn.LSTM`` written out as products whose matrices can be sparse). Each
module computes in PyTorch what its operation computes, so the rewritten model is still the
model; :mod:`prunebench.engines.openvino_engine` plans, converts and compiles.
"""
from __future__ import annotations

from typing import Iterator, TypeGuard

import numpy as np
import torch
from torch import nn

from ..pruning.targets import is_transposed_linear

#: activation codes of the operations' fused activation: 0 none, 1 relu, 2 clamp(0, 6)
ACTS = {nn.ReLU: 1, nn.ReLU6: 2}


def why_not_sparse(model: nn.Module, name: str) -> str | None:
    """Why the custom operation cannot run this (pruned) module; None when it can."""
    module = model.get_submodule(name)
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    if isinstance(module, nn.Linear) and isinstance(parent, nn.MultiheadAttention) \
            and name.endswith("out_proj"):
        return ("out_proj of nn.MultiheadAttention: its fused forward reads the weight without "
                "calling the module, so the sparse operation cannot take its place")
    if isinstance(module, nn.Linear) or is_transposed_linear(module):
        return None
    if lstm_problem(module):
        return lstm_problem(module)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        k = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,)
        pad = module.padding if isinstance(module.padding, tuple) else (module.padding,)
        if module.groups == 1 and all(v == 1 for v in k) and all(p in (0, "valid") for p in pad) \
                and module.padding_mode == "zeros":
            return None
        return (f"{type(module).__name__} kernel {tuple(k)} groups {module.groups}: the sparse "
                "operation runs Linear and 1x1 convolutions only")
    return f"{type(module).__name__}: the sparse operation runs Linear and 1x1 convolutions only"


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def is_planar_depthwise(module: nn.Module | None) -> TypeGuard[nn.Conv2d]:
    """A depthwise 3x3 convolution (padding 1, stride 1 or 2) the ``DepthwiseConv`` operation
    runs."""
    return (isinstance(module, nn.Conv2d) and module.groups == module.in_channels
            == module.out_channels and module.kernel_size == (3, 3) and module.padding == (1, 1)
            and module.stride in ((1, 1), (2, 2)) and module.dilation == (1, 1)
            and module.padding_mode == "zeros")


class PlanarDepthwise(nn.Module):
    """A depthwise 3x3 convolution the trace hands to the ``DepthwiseConv`` operation (its own
    module type: OpenVINO's frontend takes one extension per module type)."""

    _pb_dw: int   # the key of its weights, set by the engine

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.groups = conv.stride, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, 1, 1, self.groups)


class ExpandDepthwise(nn.Module):
    """A sparse 1x1 convolution and the 3x3 depthwise convolution it feeds, for the trace to
    hand to the ``ExpandDepthwise`` operation as one (the expanded tensor never leaves it)."""

    _pb_fused: int   # the key of its arrays, set by the engine

    def __init__(self, expand: nn.Conv2d, dw: nn.Conv2d, act_e: int, act: int):
        super().__init__()
        self.expand, self.dw, self.act_e, self.act = expand, dw, act_e, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_act(self.dw(apply_act(self.expand(x), self.act_e)), self.act)


class InvertedBlock(ExpandDepthwise):
    """An :class:`ExpandDepthwise` and the sparse 1x1 projection after it (an inverted residual
    block without its residual add), for the ``InvertedBlock`` operation."""

    def __init__(self, expand: nn.Conv2d, dw: nn.Conv2d, project: nn.Conv2d, act_e: int,
                 act: int, act_p: int):
        super().__init__(expand, dw, act_e, act)
        self.project, self.act_p = project, act_p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_act(self.project(super().forward(x)), self.act_p)


def sequential_chains(model: nn.Module) -> Iterator[list[tuple[str, nn.Module]]]:
    """For each ``nn.Sequential``: its leaf modules in call order (nested Sequentials
    flattened, Identities skipped) as (name, module): each entry's output is the next one's
    only input."""
    def leaves(seq: nn.Sequential, prefix: str) -> Iterator[tuple[str, nn.Module]]:
        for n, m in seq._modules.items():
            full = f"{prefix}.{n}" if prefix else n
            if isinstance(m, nn.Sequential):
                yield from leaves(m, full)
            elif m is not None and not isinstance(m, nn.Identity):
                yield full, m
    for pname, seq in model.named_modules():
        if isinstance(seq, nn.Sequential):
            yield list(leaves(seq, pname))


def bias_array(m: nn.Module) -> np.ndarray:
    """A layer's bias as float32, 0 elements when it has none (the operations' convention)."""
    bias = m.bias
    return (bias.detach().float().numpy().copy() if isinstance(bias, torch.Tensor)
            else np.zeros(0, np.float32))


def dw_weights(m: nn.Conv2d) -> np.ndarray:
    """A 3x3 depthwise convolution's weights as [channels, 9], row-major taps."""
    return m.weight.detach().float().numpy().reshape(m.out_channels, 9).copy()


def depthwise_conv(x: torch.Tensor, w: np.ndarray, b: np.ndarray, stride: int) -> torch.Tensor:
    """What DepthwiseConv computes (before its activation), in PyTorch, for the trace."""
    return torch.nn.functional.conv2d(x, torch.from_numpy(w).reshape(-1, 1, 3, 3),
                                      torch.from_numpy(b) if b.size else None,
                                      stride=stride, padding=1, groups=w.shape[0])


def is_pointwise(module: nn.Module | None) -> TypeGuard[nn.Conv2d]:
    return (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1
            and module.stride == (1, 1) and module.padding == (0, 0))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a Conv in an ``nn.Sequential`` into the
    convolution (in place, eval mode): zeros of a pruned weight stay zeros."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, (nn.Conv1d, nn.Conv2d)) and isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) \
                    and bn.track_running_stats and conv.padding_mode == "zeros":
                seq._modules[a] = fuse_conv_bn_eval(conv.eval(), bn.eval())
                seq._modules[b] = nn.Identity()
    return model


def fuse_activation(model: nn.Module, sparse: set[str]) -> dict[str, int]:
    """{module name: act code} for sparse layers followed by a ReLU/ReLU6 in a Sequential
    (Identities between them, e.g. a folded BatchNorm, skipped); the activation is replaced by
    Identity (the operation applies it)."""
    acts = {}
    for pname, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        # the next module that is not an Identity (a BatchNorm folded away leaves one)
        names = [n for n in seq._modules if not isinstance(seq._modules[n], nn.Identity)]
        for a, b in zip(names, names[1:]):
            full = f"{pname}.{a}" if pname else a
            code = ACTS.get(type(seq._modules[b]))
            if full in sparse and code:
                acts[full] = code
                seq._modules[b] = nn.Identity()
    return acts


def apply_act(y: torch.Tensor, act: int) -> torch.Tensor:
    return y if act == 0 else (torch.relu(y) if act == 1 else torch.clamp(y, 0, 6))


class UnrolledLSTM(nn.Module):
    """An ``nn.LSTM`` (unidirectional, no projection) written as its products and gates, so
    that each layer's input and recurrent matrices are ``nn.Linear`` modules the sparse
    operation can take the place of: ``ih`` (with both biases) once over all steps, ``hh`` once
    per step (the trace unrolls the steps of the shape it is compiled for). Computes what
    ``nn.LSTM`` computes in eval mode, gates in PyTorch's order (input, forget, cell, output)."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        # nn.LSTM's attributes: a model's forward may read them (e.g. ``self.rnn.hidden_size``)
        self.input_size, self.hidden_size, self.num_layers = (lstm.input_size, lstm.hidden_size,
                                                              lstm.num_layers)
        self.batch_first, self.bidirectional, self.proj_size, self.bias = (
            lstm.batch_first, False, 0, lstm.bias)
        self.ih, self.hh = nn.ModuleList(), nn.ModuleList()
        for k in range(lstm.num_layers):
            w_ih, w_hh = getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")
            ih = nn.Linear(w_ih.shape[1], w_ih.shape[0], bias=lstm.bias)
            hh = nn.Linear(w_hh.shape[1], w_hh.shape[0], bias=False)
            with torch.no_grad():
                ih.weight.copy_(w_ih)
                hh.weight.copy_(w_hh)
                if lstm.bias:
                    ih.bias.copy_(getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"))
            self.ih.append(ih)
            self.hh.append(hh)

    def forward(self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0 if self.batch_first else 1)
            hx = None if hx is None else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        if not self.batch_first:
            x = x.transpose(0, 1)
        B, T = x.shape[0], x.shape[1]
        if hx is None:
            zero = x.new_zeros(self.num_layers, B, self.hidden_size)
            hx = (zero, zero)
        hs, cs = [], []
        for k in range(self.num_layers):
            h, c = hx[0][k], hx[1][k]
            xs = self.ih[k](x)
            outs = []
            for t in range(T):
                i, f, g, o = (xs[:, t] + self.hh[k](h)).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            x = torch.stack(outs, 1)
            hs.append(h)
            cs.append(c)
        out = x if self.batch_first else x.transpose(0, 1)
        h_n, c_n = torch.stack(hs), torch.stack(cs)
        if unbatched:
            out, h_n, c_n = out.squeeze(0 if self.batch_first else 1), h_n[:, 0], c_n[:, 0]
        return out, (h_n, c_n)


#: recurrent matrices smaller than this run on OpenVINO's own LSTM sequence operation: one
#: sparse operation per step costs more than the whole dense step there (mnist1d-lstm, 4 x 64
#: x 64: 0.49-0.69 ms unrolled against 0.26 ms)
MIN_UNROLLED = 65536


def lstm_problem(module: nn.Module) -> str | None:
    if not isinstance(module, nn.LSTM):
        return None
    if module.bidirectional or module.proj_size:
        return ("a bidirectional LSTM or one with projections: the sparse operation runs "
                "unidirectional LSTMs without projections only")
    if 4 * module.hidden_size * module.hidden_size < MIN_UNROLLED:
        return (f"a small LSTM (4 x {module.hidden_size} x {module.hidden_size} recurrent "
                f"weights, under {MIN_UNROLLED}): OpenVINO's own LSTM sequence operation is "
                "faster than a sparse operation per step")
    return None
