"""The compressed-model file: a pruned torch model's weight matrices encoded per layer in a
storage format, everything else stored dense, in one safetensors container with a JSON
manifest. Loading never unpickles anything: it rebuilds the zoo architecture and fills it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import BadInputError, FormatError
from ..formats import FORMATS, Format, encode, load_container, save_container

FILE_VERSION = 1
VALUE_CHOICES = ("fp32", "fp16", "int8")


def _weight_matrices(model: nn.Module) -> dict[str, tuple[str, int, int]]:
    """{layer name: (parameter name, gate index, gates)} for every prunable weight matrix.

    Conv weights are the 2-D matrix [out, in/groups * prod(k)] the kernels use; RNN gate
    weights are split into one matrix per gate."""
    from ..pruning.targets import prunable_layers, prunable_weights

    out = {}
    for w in prunable_weights(model, prunable_layers(model)):
        for g in range(w.gates):
            out[w.name if w.gates == 1 else f"{w.name}[{g}]"] = (w.name, g, w.gates)
    return out


def _matrix(t: torch.Tensor, gate: int, gates: int) -> np.ndarray:
    m = t.detach().reshape(gates, t.shape[0] // gates, -1)[gate]
    return np.ascontiguousarray(m.numpy(), dtype=np.float32)


def _format_opts(fmt: str, opts: dict) -> dict:
    """Keep only the options the format's ``from_dense`` understands."""
    keys = {"bsr": ("block",), "ell": ("slice_height",), "nm": ("n", "m"), "rcsr": ("bits",),
            "lowrank": ("rank", "energy")}.get(fmt, ())
    return {k: opts[k] for k in keys if opts.get(k) is not None}


def encode_model(model: nn.Module, format: str | dict[str, str] = "csr", *,
                 values: str = "fp32", index_dtype=None, keep_smaller: bool = True,
                 **format_opts) -> tuple[dict[str, Format], dict[str, dict]]:
    """Encode every prunable weight matrix of ``model``.

    ``format`` is one format name for all layers or a plan {layer: format}; with
    ``keep_smaller`` a layer whose encoding would be larger than dense in the same value
    encoding is stored dense instead, and the plan says why.

    Returns (layers {name: Format}, plan {name: {format, reason, bytes...}})."""
    if values not in VALUE_CHOICES:
        raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_CHOICES)}")
    matrices = _weight_matrices(model)
    if isinstance(format, str):
        FORMATS.get(format)
        plan_in = {name: format for name in matrices}
    else:
        unknown = set(format) - set(matrices)
        if unknown:
            raise BadInputError(f"plan: unknown layer {sorted(unknown)[0]!r}; layers: "
                                + ", ".join(matrices))
        plan_in = {name: format.get(name, "dense") for name in matrices}
    params = dict(model.named_parameters())
    layers, plan = {}, {}
    for name, (pname, g, gates) in matrices.items():
        W = _matrix(params[pname], g, gates)
        want = plan_in[name]
        opts = _format_opts(want, format_opts)
        try:
            fmt = encode(W, want, values=values, index_dtype=index_dtype, **opts) \
                if want != "dense" else encode(W, "dense", values=values)
        except BadInputError as e:
            raise BadInputError(f"layer {name}: {e}") from None
        reason = "requested"
        if keep_smaller and want != "dense":
            dense = encode(W, "dense", values=values)
            if dense.nbytes()["total"] < fmt.nbytes()["total"]:
                reason = (f"{want} would take {fmt.nbytes()['total']} B > dense "
                          f"{dense.nbytes()['total']} B at sparsity {float((W == 0).mean()):.2f}")
                fmt = dense
        layers[name] = fmt
        plan[name] = {"format": fmt.name, "requested": want, "reason": reason,
                      "shape": list(W.shape), "sparsity": float((W == 0).mean()),
                      "bytes": fmt.nbytes()["total"]}
    return layers, plan


def _extra_dtype(t: torch.Tensor, values: str) -> np.dtype:
    if not t.is_floating_point():
        return t.numpy().dtype
    return np.dtype(np.float16) if values in ("fp16", "int8") else np.dtype(np.float32)


def save_model(path: str | os.PathLike, model: nn.Module, *, zoo_name: str, seed: int = 0,
               format: str | dict[str, str] = "csr", values: str = "fp32", index_dtype=None,
               keep_smaller: bool = True, info: dict | None = None, **format_opts) -> dict:
    """Write ``model`` (a zoo architecture, possibly pruned or channel-pruned) to ``path``.

    Tensors that are not prunable weight matrices (biases, norms) are stored dense: fp32, or
    fp16 when ``values`` is already lossy. Returns the plan."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise BadInputError(f"-o: {str(path)!r} is a directory, expected a file path")
    if not path.parent.exists():
        raise BadInputError(f"-o: folder {str(path.parent)!r} does not exist")
    layers, plan = encode_model(model, format, values=values, index_dtype=index_dtype,
                                keep_smaller=keep_smaller, **format_opts)
    matrices = _weight_matrices(model)
    covered = {pname for pname, _, _ in matrices.values()}
    state = model.state_dict()
    extra = {k: np.ascontiguousarray(v.detach().numpy().astype(_extra_dtype(v, values)))
             for k, v in state.items() if k not in covered}
    manifest = {
        "prunebench_model_file": FILE_VERSION, "model": zoo_name, "seed": seed,
        "values": values,
        "state": {k: list(v.shape) for k, v in state.items()},
        "modules": _module_config(model),
        "plan": plan, "info": info or {},
    }
    save_container(path, layers, extra, manifest)
    return plan


_CONFIG_ATTRS = {nn.Linear: ("in_features", "out_features"),
                 nn.Conv1d: ("in_channels", "out_channels", "groups"),
                 nn.Conv2d: ("in_channels", "out_channels", "groups"),
                 nn.BatchNorm1d: ("num_features",), nn.BatchNorm2d: ("num_features",)}


def _module_config(model: nn.Module) -> dict:
    """Shape attributes of layers (channel pruning changes them)."""
    out = {}
    for name, mod in model.named_modules():
        attrs = _CONFIG_ATTRS.get(type(mod))
        if attrs:
            out[name] = {a: int(getattr(mod, a)) for a in attrs}
    return out


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in ``path`` (no pickle) and return (model, manifest).

    Every array is validated by the container loader; here the manifest is checked against
    the architecture, and each error names the tensor and the problem."""
    from .. import zoo

    layers, extra, manifest = load_container(path)
    where = f"file {path}"
    if not isinstance(manifest, dict) or manifest.get("prunebench_model_file") != FILE_VERSION:
        raise FormatError(f"{where}: not a prunebench model file (manifest lacks "
                          f"prunebench_model_file={FILE_VERSION})")
    try:
        spec = zoo.get_spec(manifest["model"])
    except (BadInputError, KeyError) as e:
        raise FormatError(f"{where}: manifest names an unknown model: {e}") from None
    model = spec.build()
    for name, cfg in manifest.get("modules", {}).items():
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            raise FormatError(f"{where}: manifest names module {name!r}, which "
                              f"{manifest['model']} does not have") from None
        for a, v in cfg.items():
            setattr(mod, a, int(v))
    matrices = _weight_matrices(model)
    shapes = manifest.get("state", {})
    state: dict[str, torch.Tensor] = {}
    gate_parts: dict[str, list] = {}
    for lname, (pname, g, gates) in matrices.items():
        if lname not in layers:
            raise FormatError(f"{where}: layer {lname!r} is missing")
        gate_parts.setdefault(pname, [None] * gates)[g] = layers[lname].to_dense()
    for pname, parts in gate_parts.items():
        state[pname] = torch.from_numpy(np.concatenate(parts, axis=0))
    for k, a in extra.items():
        state[k] = torch.from_numpy(np.array(a))
    ref = model.state_dict()
    if set(state) != set(ref):
        missing, unexpected = set(ref) - set(state), set(state) - set(ref)
        raise FormatError(f"{where}: tensors do not match {manifest['model']}: missing "
                          f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
    for k, t in state.items():
        want = shapes.get(k)
        if want is None:
            raise FormatError(f"{where}: tensor {k!r} has no shape in the manifest")
        if t.numel() != int(np.prod(want)):
            raise FormatError(f"{where}: tensor {k!r} holds {t.numel()} values, manifest "
                              f"shape {want} needs {int(np.prod(want))}")
        t = t.reshape(want)
        if ref[k].is_floating_point():
            t = t.to(ref[k].dtype)
        _assign(model, k, t)
    if any(isinstance(m, (nn.GRU, nn.LSTM, nn.RNN)) for m in model.modules()):
        for m in model.modules():
            if isinstance(m, (nn.GRU, nn.LSTM, nn.RNN)):
                m.flatten_parameters()
    return model.eval(), manifest


def _assign(model: nn.Module, key: str, t: torch.Tensor) -> None:
    modname, _, attr = key.rpartition(".")
    mod = model.get_submodule(modname) if modname else model
    cur = getattr(mod, attr)
    if isinstance(cur, nn.Parameter):
        if cur.shape == t.shape:
            with torch.no_grad():
                cur.copy_(t)
        else:
            setattr(mod, attr, nn.Parameter(t.clone(), requires_grad=cur.requires_grad))
    else:
        if cur.shape == t.shape:
            cur.copy_(t)
        else:
            mod._buffers[attr] = t.clone()
