"""Sparse layers: Linear, Conv1d/Conv2d, GRU/LSTM/RNN and MultiheadAttention whose weight
products run on a storage format, while everything around them stays PyTorch.

A layer holds one :class:`~prunebench.runtime.ops.MatrixOp` per weight matrix (see
:mod:`prunebench.runtime.ops` for the ops and the operand layouts they compute); the same
recurrence runs on our kernels, on torch CSR tensors or on SciPy matrices.

Conventions
-----------
Activations are float32 (``BadInputError`` otherwise). Nothing here records gradients:
compiled models are for inference.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInputError
# the ops, where the engines, runtime/__init__ and the benchmarks have always imported them
from .ops import (GRAIN, KERNEL_FORMATS, KERNEL_VALUES, DenseOp, KernelOp,  # noqa: F401
                  MatrixOp, StackedOp)


def _as_f32(x: torch.Tensor, who: str) -> torch.Tensor:
    if x.dtype != torch.float32:
        raise BadInputError(f"{who}: input has dtype {x.dtype}; the sparse runtime runs "
                            "float32 activations")
    return x.detach()


# ---------------------------------------------------------------- layers


class SparseLinear(nn.Module):
    """``nn.Linear`` on a :class:`MatrixOp`: ``y = x @ W.T + b`` for x [..., in_features]
    (transformer-style inputs with any number of leading dimensions)."""

    def __init__(self, op: MatrixOp):
        super().__init__()
        self.op = op
        self.out_features, self.in_features = op.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_f32(x, "SparseLinear")
        if x.shape[-1] != self.in_features:
            raise BadInputError(f"SparseLinear: input has {x.shape[-1]} features in its last "
                                f"dimension; the layer takes {self.in_features}")
        lead = x.shape[:-1]
        y = self.op.linear(x.reshape(-1, self.in_features))
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"format={self.op.format}, values={self.op.values}")


def _same_padding(k, d):
    total = [di * (ki - 1) for ki, di in zip(k, d)]
    return [(t // 2, t - t // 2) for t in total]


class SparseConv(nn.Module):
    """``nn.Conv1d``/``nn.Conv2d`` (groups 1, zero padding) on a :class:`MatrixOp` of the
    weight matrix ``[out, in * prod(kernel)]``.

    1x1 kernels (any stride) are a direct product over the spatial positions; larger kernels
    go through im2col (``F.unfold``), whose column order (channel, then kernel row, then
    kernel column) is the weight's own. Conv1d runs as a Conv2d of height 1.
    """

    def __init__(self, op: MatrixOp, conv: nn.Conv1d | nn.Conv2d):
        super().__init__()
        if conv.groups != 1:
            raise BadInputError(f"SparseConv: groups={conv.groups}; only groups=1 runs sparse")
        if conv.padding_mode != "zeros":
            raise BadInputError(f"SparseConv: padding_mode={conv.padding_mode!r}; only 'zeros'")
        self.op = op
        self.dims = 1 if isinstance(conv, nn.Conv1d) else 2
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = tuple(conv.kernel_size), tuple(conv.stride)
        self.dilation, self.groups = tuple(conv.dilation), 1
        two = (lambda t: (1, *t)) if self.dims == 1 else (lambda t: tuple(t))
        self._k, self._s, self._d = two(self.kernel_size), two(self.stride), two(self.dilation)
        padding = conv.padding
        self.padding: str | tuple[int, ...]
        self._pad: list[tuple[int, int]]
        if isinstance(padding, str):
            self.padding = padding
            self._pad = ([(0, 0), (0, 0)] if padding == "valid"
                         else _same_padding(self._k, self._d))
        else:
            self.padding = tuple(padding)
            pads = self.padding if self.dims == 2 else (0, *self.padding)
            self._pad = [(p, p) for p in pads]
        self.pointwise = all(k == 1 for k in self._k) and not any(sum(p) for p in self._pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_f32(x, "SparseConv")
        want = 2 + self.dims
        if x.dim() == want - 1:                       # unbatched input, as nn.Conv allows
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.dim() != want or x.shape[1] != self.in_channels:
            raise BadInputError(f"SparseConv: input shape {tuple(x.shape)}; expected "
                                f"[N, {self.in_channels}, ...] with {want} dimensions")
        if self.dims == 1:
            x = x.unsqueeze(2)
        y = self._pointwise(x) if self.pointwise else self._im2col(x)
        return y.squeeze(2) if self.dims == 1 else y

    def _pointwise(self, x):
        sh, sw = self._s
        if sh > 1 or sw > 1:
            x = x[:, :, ::sh, ::sw]
        n, c, h, w = x.shape
        if self.op.layout == "rows":
            # channels-last rows [N*H*W, C]: a free view when x is channels-last already
            y = self.op.linear(x.permute(0, 2, 3, 1).reshape(n * h * w, c))
            return y.view(n, h, w, -1).permute(0, 3, 1, 2)
        if n == 1:
            return self.op.left(x.reshape(c, h * w)).view(1, -1, h, w)
        y = self.op.left(x.transpose(0, 1).reshape(c, n * h * w))
        return y.view(-1, n, h, w).transpose(0, 1)

    def _im2col(self, x):
        (pt, pb), (pl, pr) = self._pad
        if pt != pb or pl != pr:                      # asymmetric 'same' padding
            x = F.pad(x, (pl, pr, pt, pb))
            pad = (0, 0)
        else:
            pad = (pt, pl)
        n = x.shape[0]
        h_out = (x.shape[2] + 2 * pad[0] - self._d[0] * (self._k[0] - 1) - 1) // self._s[0] + 1
        w_out = (x.shape[3] + 2 * pad[1] - self._d[1] * (self._k[1] - 1) - 1) // self._s[1] + 1
        cols = F.unfold(x, self._k, dilation=self._d, padding=pad, stride=self._s)  # [N, CKK, L]
        if self.op.layout == "rows":
            y = self.op.linear(cols.transpose(1, 2).reshape(n * h_out * w_out, -1))
            return y.view(n, h_out, w_out, -1).permute(0, 3, 1, 2)
        if n == 1:
            return self.op.left(cols[0]).view(1, -1, h_out, w_out)
        y = self.op.left(cols.transpose(0, 1).reshape(cols.shape[1], -1))
        return y.view(-1, n, h_out, w_out).transpose(0, 1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, format={self.op.format}, values={self.op.values}")


def _sigmoid_(a: np.ndarray) -> np.ndarray:
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    return np.reciprocal(a, out=a)


class SparseRNN(nn.Module):
    """``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` whose matrix products run on :class:`MatrixOp`.

    Per layer and direction, ``ih`` computes the input gates of every time step in one
    product (``X[T*B, in] @ W_ih.T + b_ih``), then the recurrence calls ``hh`` once per step
    (``h[B, H] @ W_hh.T + b_hh``, all gates stacked). Gate order and equations are PyTorch's:
    GRU r, z, n with ``n = tanh(x_n + r * (W_hn h + b_hn))``; LSTM i, f, g, o, with the
    projection ``hr`` when ``proj_size > 0``. ``batch_first``, ``bidirectional``, stacked
    layers, unbatched input and an initial state ``hx`` behave as in PyTorch; dropout is an
    inference no-op. The element-wise gate math runs in NumPy on views of the same memory.
    """

    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    bidirectional: bool
    proj_size: int

    def __init__(self, rnn: nn.RNNBase, ops: dict[str, MatrixOp]):
        super().__init__()
        self.mode = rnn.mode                       # "GRU" | "LSTM" | "RNN_TANH" | "RNN_RELU"
        for a in ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                  "bidirectional", "proj_size"):
            setattr(self, a, getattr(rnn, a))
        self.ops = ops                             # {"weight_ih_l0": op, "weight_hh_l0_reverse": ...}
        self.directions = 2 if self.bidirectional else 1

    def _op(self, kind: str, layer: int, d: int) -> MatrixOp | None:
        return self.ops.get(f"weight_{kind}_l{layer}{'_reverse' if d else ''}")

    def forward(self, input: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
        if isinstance(input, nn.utils.rnn.PackedSequence):
            raise BadInputError("SparseRNN: PackedSequence input is not supported; pass a "
                                "padded tensor")
        x = _as_f32(input, "SparseRNN")
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(1)                     # [T, 1, in]
        elif self.batch_first:
            x = x.transpose(0, 1)                  # time-major [T, B, in]
        if x.shape[-1] != self.input_size:
            raise BadInputError(f"SparseRNN: input has {x.shape[-1]} features; the layer takes "
                                f"{self.input_size}")
        T, B = x.shape[0], x.shape[1]
        H = self.hidden_size
        H_out = self.proj_size or H
        LD = self.num_layers * self.directions
        lstm = self.mode == "LSTM"
        h0: Any = None                             # a tensor, then its float32 array
        c0: Any = None
        if hx is not None:
            if lstm:
                h0, c0 = hx
            else:
                h0 = hx
            if not batched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
        h0 = (np.zeros((LD, B, H_out), np.float32) if h0 is None
              else np.ascontiguousarray(_as_f32(h0, "SparseRNN hx").numpy()))
        if lstm:
            c0 = (np.zeros((LD, B, H), np.float32) if c0 is None
                  else np.ascontiguousarray(_as_f32(c0, "SparseRNN cx").numpy()))
        h_n = np.empty((LD, B, H_out), np.float32)
        c_n: Any = np.empty((LD, B, H), np.float32) if lstm else None
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.directions):
                k = layer * self.directions + d
                ih = self._op("ih", layer, d)
                assert ih is not None              # every layer and direction has its ih product
                gi = ih.linear(layer_in.reshape(T * B, -1)).numpy().reshape(T, B, -1)
                steps = np.empty((T, B, H_out), np.float32)
                h, c = self._recur(gi, h0[k], c0[k] if lstm else None, layer, d, steps)
                h_n[k] = h
                if lstm:
                    c_n[k] = c
                outs.append(steps)
            layer_in = torch.from_numpy(np.concatenate(outs, axis=2) if len(outs) > 1 else outs[0])
        out = layer_in
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        hn = torch.from_numpy(h_n)
        cn: Any = torch.from_numpy(c_n) if lstm else None
        if not batched:
            hn = hn.squeeze(1)
            cn = cn.squeeze(1) if lstm else None
        return out, ((hn, cn) if lstm else hn)

    def _recur(self, gi, h, c, layer, d, out):
        hh = self._op("hh", layer, d)
        hr = self._op("hr", layer, d)
        H = self.hidden_size
        h = h.copy()
        c = None if c is None else c.copy()
        steps = range(gi.shape[0] - 1, -1, -1) if d else range(gi.shape[0])
        for t in steps:
            gh = hh.linear(torch.from_numpy(h)).numpy()
            g = gi[t]
            if self.mode == "GRU":
                rz = _sigmoid_(g[:, :2 * H] + gh[:, :2 * H])
                n = rz[:, :H] * gh[:, 2 * H:]
                n += g[:, 2 * H:]
                np.tanh(n, out=n)
                h -= n                              # h' = n + z * (h - n)
                h *= rz[:, H:]
                h += n
            elif self.mode == "LSTM":
                a = g + gh
                _sigmoid_(a[:, :2 * H])
                np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
                _sigmoid_(a[:, 3 * H:])
                c *= a[:, H:2 * H]
                c += a[:, :H] * a[:, 2 * H:3 * H]
                hc = np.tanh(c)
                hc *= a[:, 3 * H:]
                h = hr.linear(torch.from_numpy(hc)).numpy() if hr is not None else hc
            else:
                a = g + gh
                h = np.tanh(a) if self.mode == "RNN_TANH" else np.maximum(a, 0)
            out[t] = h
        return h, c

    def extra_repr(self) -> str:
        fmts = sorted({o.format for o in self.ops.values()})
        return (f"{self.mode}, {self.input_size}, {self.hidden_size}, num_layers="
                f"{self.num_layers}, bidirectional={self.bidirectional}, formats={fmts}")


class SparseMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` whose query, key and value projections run on one
    :class:`MatrixOp` each (the gates of ``in_proj_weight``, or ``q/k/v_proj_weight``), and
    whose ``out_proj`` is a child module (``nn.Linear`` or :class:`SparseLinear`).

    The forward is ``F.multi_head_attention_forward``'s in eval mode (dropout off): the same
    call signature, masks (bool or float, ``key_padding_mask``, 2-D/3-D ``attn_mask``,
    ``is_causal``), ``bias_k``/``bias_v``, ``add_zero_attn``, ``batch_first``, unbatched input,
    and the attention weights when ``need_weights``. PyTorch's fused fast path reads the dense
    weights; this module has none, so it never takes it.
    """

    embed_dim: int
    kdim: int
    vdim: int
    num_heads: int
    head_dim: int
    batch_first: bool
    add_zero_attn: bool
    bias_k: nn.Parameter | None
    bias_v: nn.Parameter | None

    def __init__(self, mha: nn.MultiheadAttention, ops: dict[str, MatrixOp]):
        super().__init__()
        for a in ("embed_dim", "kdim", "vdim", "num_heads", "head_dim", "batch_first",
                  "add_zero_attn", "_qkv_same_embed_dim"):
            setattr(self, a, getattr(mha, a))
        self.ops = ops                              # {"q": op, "k": op, "v": op}
        self.bias_k = None if mha.bias_k is None else nn.Parameter(mha.bias_k.detach().clone(), requires_grad=False)
        self.bias_v = None if mha.bias_v is None else nn.Parameter(mha.bias_v.detach().clone(), requires_grad=False)
        self.out_proj = mha.out_proj

    def _project(self, which: str, x: torch.Tensor) -> torch.Tensor:
        x = _as_f32(x, "SparseMultiheadAttention")
        op = self.ops[which]
        return op.linear(x.reshape(-1, op.shape[1])).reshape(*x.shape[:-1], op.shape[0])

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if self.batch_first and batched:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if not batched:
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        tgt_len, bsz, E = query.shape
        H, hd = self.num_heads, self.head_dim
        key_padding_mask = F._canonical_mask(
            mask=key_padding_mask, mask_name="key_padding_mask",
            other_type=F._none_or_dtype(attn_mask), other_name="attn_mask",
            target_type=query.dtype)
        if is_causal and attn_mask is None:
            raise BadInputError("SparseMultiheadAttention: is_causal=True needs attn_mask, as "
                                "in nn.MultiheadAttention")
        if is_causal and key_padding_mask is None and not need_weights:
            attn_mask = None                        # scaled_dot_product_attention's own mask
        else:
            attn_mask = F._canonical_mask(mask=attn_mask, mask_name="attn_mask", other_type=None,
                                          other_name="", target_type=query.dtype,
                                          check_other=False)
            if key_padding_mask is not None:
                is_causal = False
        q = self._project("q", query)
        k = self._project("k", key)
        v = self._project("v", value)
        if attn_mask is not None and attn_mask.dim() == 2:
            attn_mask = attn_mask.unsqueeze(0)
        if self.bias_k is not None and self.bias_v is not None:  # both or neither
            k = torch.cat([k, self.bias_k.repeat(1, bsz, 1)])
            v = torch.cat([v, self.bias_v.repeat(1, bsz, 1)])
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        q = q.reshape(tgt_len, bsz * H, hd).transpose(0, 1)
        k = k.reshape(k.shape[0], bsz * H, hd).transpose(0, 1)
        v = v.reshape(v.shape[0], bsz * H, hd).transpose(0, 1)
        if self.add_zero_attn:
            zeros = torch.zeros((bsz * H, 1, hd), dtype=k.dtype)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        src_len = k.shape[1]
        if key_padding_mask is not None:
            kpm = key_padding_mask.view(bsz, 1, 1, src_len).expand(-1, H, -1, -1)
            kpm = kpm.reshape(bsz * H, 1, src_len)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        if need_weights:
            scaled = q * (1.0 / hd) ** 0.5
            w = (torch.baddbmm(attn_mask, scaled, k.transpose(-2, -1)) if attn_mask is not None
                 else torch.bmm(scaled, k.transpose(-2, -1)))
            w = torch.softmax(w, dim=-1)
            out = torch.bmm(w, v).transpose(0, 1).reshape(tgt_len * bsz, E)
            w = w.view(bsz, H, tgt_len, src_len)
            if average_attn_weights:
                w = w.mean(dim=1)
        else:
            if attn_mask is not None:
                attn_mask = (attn_mask.unsqueeze(0) if attn_mask.size(0) == 1 and attn_mask.dim() == 3
                             else attn_mask.view(bsz, H, -1, src_len))
            out = F.scaled_dot_product_attention(q.view(bsz, H, tgt_len, hd),
                                                 k.view(bsz, H, src_len, hd),
                                                 v.view(bsz, H, src_len, hd), attn_mask, 0.0,
                                                 is_causal)
            out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, E)
            w = None
        out = self.out_proj(out).view(tgt_len, bsz, -1)
        if not batched:
            out = out.squeeze(1)
            w = None if w is None else w.squeeze(0)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, w

    def extra_repr(self) -> str:
        fmts = sorted({o.format for o in self.ops.values()})
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"batch_first={self.batch_first}, formats={fmts}")
