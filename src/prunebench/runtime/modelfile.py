"""The compressed-model file: a pruned zoo model's weight matrices encoded per layer in a
storage format, everything else stored dense, in one safetensors container
(:mod:`prunebench.formats.container`). Loading never unpickles anything: it rebuilds the zoo
architecture, checks every tensor against it and fills it in.

A model that is not in the zoo is stored as a *graph file* instead (manifest ``"kind":
"graph"``): its ONNX graph plus its weights in our formats, loaded without the user's class
(:mod:`prunebench.runtime.graphfile`). Files without ``kind`` are zoo files, as before.

What the file holds
-------------------
* one container layer per prunable weight matrix, named after its parameter
  (``layers.0.weight``; a GRU/LSTM gate matrix is ``rnn.weight_ih_l0[1]``; a Conv weight is the
  matrix ``[out, in/groups * prod(kernel)]``);
* every other tensor of the state dict (biases, norms, counters), raveled and concatenated in
  state-dict order into one container extra per dtype: ``extra::float32`` with ``values="fp32"``,
  ``extra::float16`` otherwise (floating tensors); integer buffers keep their dtype
  (``extra::int64``). Shapes are not stored: they follow from the architecture;
* a short JSON manifest::

    {"prunebench_model_file": 2, "model": zoo name, "seed": int, "values": "fp32|fp16|int8",
     "requested": format name or {layer: format},
     "fallbacks": {layer: why it is stored dense instead},   # only layers not as requested
     "modules": {module: {attr: int}},   # only shape attributes that differ from the zoo build
     "info": {...}}                       # provenance from the caller (pruning settings)

Every layer's values must equal the manifest's ``values``; the model is lossless only with
``"fp32"`` and lossless layouts (not ``lowrank``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
import torch
from torch import nn

from ..dtypes import FP16_MAX, VALUE_ENCODINGS
from ..errors import BadInputError, FormatError
from ..formats import FORMATS, Format, encode, inspect_container, load_container, save_container
from .encoding import misfit as format_misfit, options_for
from .manifest import CONFIG_ATTRS, FILE_VERSION, check_manifest, check_modules

# ---------------------------------------------------------------- model structure


def _weight_matrices(model: nn.Module) -> dict[str, tuple[str, int, int]]:
    """{layer name: (parameter name, gate index, gates)} for every prunable weight matrix.

    Conv weights are the 2-D matrix [out, in/groups * prod(k)] the kernels use; RNN gate
    weights are split into one matrix per gate; transformers' Conv1D weight [in, out] is its
    transpose (:func:`_transposed` names those)."""
    from ..pruning.targets import prunable_layers, prunable_weights

    out = {}
    for w in prunable_weights(model, prunable_layers(model)):
        for g in range(w.gates):
            out[w.name if w.gates == 1 else f"{w.name}[{g}]"] = (w.name, g, w.gates)
    return out


def _transposed(model: nn.Module) -> set[str]:
    """Parameter names of the weights stored [in, out] (transformers' Conv1D)."""
    from ..pruning.targets import prunable_layers, prunable_weights

    return {w.name for w in prunable_weights(model, prunable_layers(model)) if w.transposed}


def _matrix(t: torch.Tensor, gate: int, gates: int, transposed: bool = False) -> np.ndarray:
    t = t.detach().t() if transposed else t.detach()
    m = t.reshape(gates, t.shape[0] // gates, -1)[gate]
    return np.ascontiguousarray(m.numpy(), dtype=np.float32)


def _build(zoo_name: str) -> nn.Module:
    """A fresh zoo architecture, without touching the caller's random state."""
    from .. import zoo

    spec = zoo.get_spec(zoo_name)
    with torch.random.fork_rng(devices=[]):
        return spec.build()


def zoo_dense_file_bytes(zoo_name: str) -> int:
    """Bytes of the zoo architecture's state dict as a dense fp32 safetensors file: what
    ``pack``, ``plan`` and ``inspect`` compare a model file with."""
    from ..measure import state_file_bytes

    return state_file_bytes(_build(zoo_name))


def _module_config(model: nn.Module) -> dict[str, dict[str, int]]:
    """Shape attributes of the layers channel pruning changes."""
    out = {}
    for name, mod in model.named_modules():
        attrs = CONFIG_ATTRS.get(type(mod))
        if attrs:
            out[name] = {a: int(getattr(mod, a)) for a in attrs}
    return out


def _changed_config(model: nn.Module, reference: nn.Module) -> dict[str, dict[str, int]]:
    ref = _module_config(reference)
    out = {}
    for name, cfg in _module_config(model).items():
        diff = {a: v for a, v in cfg.items() if ref.get(name, {}).get(a) != v}
        if diff:
            out[name] = diff
    return out


def _elements(shapes: dict[str, tuple[int, ...]]) -> int:
    """How many numbers tensors of these shapes hold (Python ints: no overflow)."""
    return sum(math.prod(s) for s in shapes.values())


def _expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Shape of every state tensor as the modules' shape attributes say (so a model whose
    attributes were set from a manifest can be checked before its tensors are replaced)."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, mod in model.named_modules():
        prefix = f"{name}." if name else ""
        own = {}
        if isinstance(mod, nn.Linear):
            own = {"weight": (mod.out_features, mod.in_features), "bias": (mod.out_features,)}
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            own = {"weight": (mod.out_channels, mod.in_channels // mod.groups, *mod.kernel_size),
                   "bias": (mod.out_channels,)}
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = (mod.num_features,)
            own = {"weight": n, "bias": n, "running_mean": n, "running_var": n}
        for k, shape in own.items():
            if prefix + k in shapes:
                shapes[prefix + k] = tuple(int(s) for s in shape)
    return shapes


def _extra_dtype(dtype: torch.dtype, values: str) -> np.dtype:
    """Storage dtype of a tensor that is not a weight matrix."""
    if not dtype.is_floating_point:
        return np.dtype(str(dtype).removeprefix("torch."))
    return np.dtype(np.float32) if values == "fp32" else np.dtype(np.float16)


def _extra_groups(state: dict[str, Any], covered: set[str], values: str) -> dict[str, list[str]]:
    """{dtype name: [tensor names in state-dict order]} of the tensors stored as extras."""
    groups: dict[str, list[str]] = {}
    for k, v in state.items():
        if k not in covered:
            groups.setdefault(_extra_dtype(v.dtype, values).name, []).append(k)
    return groups


# ---------------------------------------------------------------- encoding and saving


def encode_model(model: nn.Module, format: str | dict[str, str] = "csr", *,
                 values: str = "fp32", index_dtype: DTypeLike | None = None,
                 keep_smaller: bool = True,
                 **format_opts: Any) -> tuple[dict[str, Format], dict[str, dict[str, Any]]]:
    """Encode every prunable weight matrix of ``model``.

    ``format`` is one format name for all layers or a plan {layer: format} (unlisted layers:
    dense). With ``keep_smaller`` a layer is stored dense instead when its encoding would be
    larger than dense in the same value encoding, or when it does not fit the format's pattern
    (an N:M layer that is not N:M sparse); the plan says why. Without it such a layer raises
    BadInputError. A model-wide lowrank ``rank`` is capped at each matrix's ``min(rows, cols)``.

    Returns (layers {name: Format}, plan {name: {format, requested, reason, shape, sparsity,
    bytes, lossless, error}}), ``error`` being :func:`prunebench.formats.encoding_error`
    against the model's matrix.
    """
    if values not in VALUE_ENCODINGS:
        raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_ENCODINGS)}")
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
    transposed = _transposed(model)
    layers: dict[str, Format] = {}
    plan: dict[str, dict[str, Any]] = {}
    for name, (pname, g, gates) in matrices.items():
        W = _matrix(params[pname], g, gates, pname in transposed)
        want = plan_in[name]
        opts = options_for(want, format_opts)
        if "rank" in opts:         # one rank for the model: a thin matrix gets its full rank
            opts["rank"] = min(opts["rank"], min(W.shape))
        reason = "requested"
        misfit = format_misfit(want, W, opts)
        try:
            if misfit and keep_smaller:
                fmt, reason = encode(W, "dense", values=values), f"{misfit}; stored dense"
            elif want == "dense":
                fmt = encode(W, "dense", values=values)
            else:
                fmt = encode(W, want, values=values, index_dtype=index_dtype, **opts)
        except BadInputError as e:
            raise BadInputError(f"layer {name}: {e}") from None
        if keep_smaller and fmt.name != "dense":
            dense = encode(W, "dense", values=values)
            if dense.nbytes()["total"] < fmt.nbytes()["total"]:
                reason = (f"{want} would take {fmt.nbytes()['total']} B > dense "
                          f"{dense.nbytes()['total']} B at sparsity {float((W == 0).mean()):.2f}")
                fmt = dense
        layers[name] = fmt
        # lossless encodings are exact by construction (tests and pack check it on the file);
        # decoding them here would double the memory of a big model for nothing
        error = {"max_abs": 0.0, "rel_fro": 0.0} if fmt.lossless else fmt.error_vs(W)
        plan[name] = {"format": fmt.name, "requested": want, "reason": reason,
                      "shape": list(W.shape), "sparsity": float((W == 0).mean()),
                      "bytes": fmt.nbytes()["total"], "lossless": fmt.lossless, "error": error}
    return layers, plan


def save_model(path: str | os.PathLike[str], model: nn.Module, *, zoo_name: str | None = None,
               seed: int = 0, format: str | dict[str, str] = "csr", values: str = "fp32",
               index_dtype: DTypeLike | None = None, keep_smaller: bool = True,
               info: dict[str, Any] | None = None, planner: dict[str, Any] | None = None,
               example_input: torch.Tensor | None = None, graph: bool | None = None,
               **format_opts: Any) -> dict[str, dict[str, Any]]:
    """Write ``model`` (the zoo architecture ``zoo_name``, possibly pruned or channel-pruned)
    to ``path``; see the module docstring for what the file holds.

    Without ``zoo_name`` (or with the name of a model registered from the user's code,
    ``--model module:factory``), or with ``graph=True``, the file is a graph file: the model
    is exported to ONNX on ``example_input`` (required unless the registered model has one)
    and loads without its Python class (:func:`prunebench.runtime.graphfile.save_graph_model`).

    Tensors that are not prunable weight matrices (biases, norms) are stored dense: fp32, or
    fp16 when ``values`` is already lossy (a value beyond fp16's range raises BadInputError).
    ``format_opts`` go to the formats that take them (``bits``, ``block``, ``n``, ``m``,
    ``slice_height``, ``rank``, ``energy``). ``planner`` is a planner's record
    (:meth:`prunebench.planner.Plan.manifest`: per layer the chosen format and the measured
    time of each candidate), kept in the manifest for ``inspect``. Returns the plan of
    :func:`encode_model`.
    """
    path = Path(path)
    if path.exists() and path.is_dir():
        raise BadInputError(f"-o: {str(path)!r} is a directory, expected a file path")
    if not path.parent.exists():
        raise BadInputError(f"-o: folder {str(path.parent)!r} does not exist")
    from ..zoo.user import is_user_model

    if graph is None:
        graph = zoo_name is None or is_user_model(zoo_name)
    if graph:
        from .graphfile import save_graph_model

        if example_input is None and zoo_name is not None:
            from .. import zoo

            example_input = zoo.get_spec(zoo_name).example_input(1, seed)
        if example_input is None:
            raise BadInputError("save_model: a model that is not in the zoo is stored as its "
                                "ONNX graph; give example_input= (one batch of its input)")
        if planner:
            info = dict(info or {}, planner=planner)
        return save_graph_model(path, model, example_input, name=zoo_name or type(model).__name__,
                                format=format, values=values, index_dtype=index_dtype,
                                keep_smaller=keep_smaller, info=info, **format_opts)
    if zoo_name is None:
        raise BadInputError("save_model: graph=False stores a zoo model's file; give "
                            "zoo_name= (the zoo model it is)")
    reference = _build(zoo_name)
    state = model.state_dict()
    if list(state) != list(reference.state_dict()):
        missing = sorted(set(reference.state_dict()) - set(state))
        unexpected = sorted(set(state) - set(reference.state_dict()))
        raise BadInputError(f"model: its tensors are not those of zoo model {zoo_name!r} "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    layers, plan = encode_model(model, format, values=values, index_dtype=index_dtype,
                                keep_smaller=keep_smaller, **format_opts)
    covered = {pname for pname, _, _ in _weight_matrices(model).values()}
    extra = {}
    for dtype, names in _extra_groups(state, covered, values).items():
        parts = [state[k].detach().numpy().ravel() for k in names]
        for k, p in zip(names, parts):
            if dtype == "float16" and p.size and float(np.abs(p).max()) > FP16_MAX:
                raise BadInputError(f"--values {values}: tensor {k!r} holds "
                                    f"{float(np.abs(p).max()):g}, beyond float16 (max {FP16_MAX:g}); "
                                    f"use --values fp32")
        extra[dtype] = np.concatenate(parts).astype(dtype)
    manifest = {
        "prunebench_model_file": FILE_VERSION, "model": zoo_name, "seed": seed, "values": values,
        "requested": format if isinstance(format, str) else dict(format),
        "fallbacks": {k: p["reason"] for k, p in plan.items() if p["reason"] != "requested"},
    }
    changed = _changed_config(model, reference)
    if changed:
        manifest["modules"] = changed
    if info:
        manifest["info"] = info
    if planner:
        manifest["planner"] = planner
    save_container(path, layers, extra, manifest)
    return plan


# ---------------------------------------------------------------- loading


def load_model(path: str | os.PathLike[str], *, max_elements: int | None = None
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in ``path`` (no pickle) and return (model in eval mode,
    manifest). A graph file gives a :class:`prunebench.runtime.graphfile.GraphModel` (its
    ONNX graph on ONNX Runtime), which may decode at most ``max_elements`` weights (default
    ``graphfile.MAX_ELEMENTS``).

    Every array is validated by the container loader; here every tensor is checked against
    the architecture (names, shapes, dtypes, value encoding), and finally the model must run
    on an example input. Each error is a FormatError naming the file, the layer or tensor and
    the problem."""
    from .. import zoo

    where = f"file {path}"
    layers, extra, manifest = load_container(path)
    manifest = check_manifest(where, manifest)
    if manifest.get("kind") == "graph":
        from .graphfile import MAX_ELEMENTS, load_graph_model

        return load_graph_model(where, layers, extra, manifest,
                                MAX_ELEMENTS if max_elements is None else max_elements), manifest
    name: Any = manifest.get("model")   # unchecked JSON: get_spec refuses a non-zoo name
    try:
        spec = zoo.get_spec(name)
    except BadInputError as e:
        raise FormatError(f"{where}: manifest names an unknown model: {e}") from None
    model = _build(name)
    limit = _elements(_expected_shapes(model))
    check_modules(where, model, manifest.get("modules", {}), name)
    values = manifest["values"]
    shapes = _expected_shapes(model)
    if _elements(shapes) > limit:  # before any tensor is decoded: a memory bomb stops here
        raise FormatError(f"{where}: manifest 'modules' describe {_elements(shapes):,} "
                          f"weights, more than the {limit:,} of zoo model {name} (pruning only "
                          f"removes weights)")
    ref_state = model.state_dict()
    matrices = _weight_matrices(model)

    state: dict[str, np.ndarray] = {}
    stray = sorted(set(layers) - set(matrices))
    if stray:
        raise FormatError(f"{where}: layer {stray[0]!r} is not a weight matrix of {name} "
                          f"(its weight matrices: {', '.join(matrices)})")
    gate_parts: dict[str, list] = {}
    transposed = _transposed(model)
    for lname, (pname, g, gates) in matrices.items():
        if lname not in layers:
            raise FormatError(f"{where}: layer {lname!r} is missing")
        fmt, shape = layers[lname], shapes[pname]
        if pname in transposed:
            shape = shape[::-1]
        want = (shape[0] // gates, int(np.prod(shape[1:])))
        if fmt.shape != want:
            of = f" (of {pname} {list(shape)})" if tuple(shape) != want else ""
            raise FormatError(f"{where}, layer {lname!r}: shape {list(fmt.shape)}, but {name} "
                              f"needs {list(want)}{of}")
        if fmt.values != values:
            raise FormatError(f"{where}, layer {lname!r}: values {fmt.values!r}, but the "
                              f"manifest says {values!r}")
        gate_parts.setdefault(pname, [None] * gates)[g] = fmt.to_dense()
    for pname, parts in gate_parts.items():
        if pname in transposed:
            state[pname] = np.ascontiguousarray(np.concatenate(parts, axis=0).T)
        else:
            state[pname] = np.concatenate(parts, axis=0).reshape(shapes[pname])

    groups = _extra_groups(ref_state, set(gate_parts), values)
    unexpected = sorted(set(extra) - set(groups))
    if unexpected:
        raise FormatError(f"{where}: unexpected tensor extra::{unexpected[0]} (expected "
                          f"{', '.join('extra::' + g for g in groups) or 'none'})")
    for dtype, names in groups.items():
        holds = f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
        if dtype not in extra:
            raise FormatError(f"{where}: tensor extra::{dtype} is missing (it holds {holds})")
        a = extra[dtype]
        sizes = [int(np.prod(shapes[k])) for k in names]
        if a.dtype.name != dtype or a.ndim != 1 or len(a) != sum(sizes):
            raise FormatError(f"{where}: tensor extra::{dtype} is {a.dtype} {list(a.shape)}, "
                              f"expected {dtype} [{sum(sizes)}] for {holds}")
        for k, part in zip(names, np.split(a, np.cumsum(sizes)[:-1])):
            state[k] = part.reshape(shapes[k])

    for k, a in state.items():
        t = torch.from_numpy(np.array(a))
        if ref_state[k].is_floating_point():
            t = t.to(ref_state[k].dtype)
        _assign(model, k, t)
    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            m.flatten_parameters()
    model.eval()
    try:
        with torch.no_grad():
            model(spec.example_input(1))
    except Exception as e:   # shapes that agree per layer but not between layers
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FormatError(f"{where}: the stored {name} does not run: {msg}") from None
    return model, manifest


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
    elif cur.shape == t.shape:
        cur.copy_(t)
    else:
        mod._buffers[attr] = t.clone()


# ---------------------------------------------------------------- inspection


def _planned_why(record: dict) -> str:
    """'planner: <reason>; measured dense 1.2 ms, csr 0.4 ms, ...' from a manifest's plan."""
    times = record.get("times_ms", {})
    shown = ", ".join(f"{f} {t:.3g} ms" for f, t in times.items()
                      if isinstance(t, (int, float)))
    return f"planner: {record.get('reason', '?')}" + (f"; measured {shown}" if shown else "")


def inspect_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate a model file like :func:`load_model` and report its bytes.

    Returns :func:`prunebench.formats.inspect_container`'s dict with, per layer, ``why`` (the
    format was requested, or why the layer is dense instead) and ``sparsity`` (zeros of the
    decoded matrix), plus ``model``, ``values``, ``lossless`` (fp32 values and lossless
    layouts), ``dense_file_bytes`` (the zoo architecture's state dict as a dense fp32
    safetensors file, what ``pack`` compares against) and ``compression_ratio``.
    """
    model, _ = load_model(path)
    info = inspect_container(path)
    man = info["manifest"]
    fallbacks = man.get("fallbacks", {})
    if man.get("kind") == "graph":
        from .graphfile import inspect_graph

        return inspect_graph(info, man, fallbacks)
    params = dict(model.named_parameters())
    planned = man.get("planner", {}).get("layers", {})
    planned = planned if isinstance(planned, dict) else {}
    for lname, (pname, g, gates) in _weight_matrices(model).items():
        lay = info["layers"][lname]
        lay["why"] = fallbacks.get(lname, "requested")
        record = planned.get(pname.rpartition(".")[0])
        if isinstance(record, dict) and lname not in fallbacks:
            lay["why"] = _planned_why(record)
            lay["planner_times_ms"] = record.get("times_ms", {})
        lay["sparsity"] = float((_matrix(params[pname], g, gates) == 0).mean())
    info["model"], info["values"] = man["model"], man["values"]
    info["lossless"] = man["values"] == "fp32" and all(v["lossless"] for v in info["layers"].values())
    info["dense_file_bytes"] = zoo_dense_file_bytes(man["model"])
    info["compression_ratio"] = info["dense_file_bytes"] / info["file_bytes"]
    return info
