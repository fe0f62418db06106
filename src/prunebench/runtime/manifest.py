"""The model file's manifest (the JSON beside the tensors in the safetensors container): its
version, and the checks a loaded manifest passes before anything is built from it, shared by
zoo files (:mod:`~prunebench.runtime.modelfile`) and graph files
(:mod:`~prunebench.runtime.graphfile`). Each error is a FormatError naming the file, the key
and what was expected: a crafted file is refused here, not by an AttributeError later."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..dtypes import VALUE_ENCODINGS
from ..errors import FormatError

FILE_VERSION = 2

#: shape attributes channel pruning changes; everything a layer's tensors need follows from them
CONFIG_ATTRS: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Linear: ("in_features", "out_features"),
    nn.Conv1d: ("in_channels", "out_channels", "groups"),
    nn.Conv2d: ("in_channels", "out_channels", "groups"),
    nn.BatchNorm1d: ("num_features",), nn.BatchNorm2d: ("num_features",)}


def check_modules(where: str, model: nn.Module, modules: Any, zoo_name: str) -> None:
    """Apply the manifest's shape attributes to ``model`` after checking each one."""
    if not isinstance(modules, dict):
        raise FormatError(f"{where}: manifest 'modules' should be a dict, got {type(modules).__name__}")
    for name, cfg in modules.items():
        try:
            mod = model.get_submodule(name) if isinstance(name, str) and name else None
        except AttributeError:
            mod = None
        allowed = CONFIG_ATTRS.get(type(mod), ()) if mod is not None else ()
        if not allowed:
            raise FormatError(f"{where}: manifest 'modules' names {name!r}, which is not a "
                              f"Linear/Conv/BatchNorm module of {zoo_name}")
        if not isinstance(cfg, dict) or not cfg:
            raise FormatError(f"{where}: manifest 'modules' entry {name!r} should be a non-empty dict")
        for a, v in cfg.items():
            if a not in allowed:
                raise FormatError(f"{where}: manifest 'modules' sets {name}.{a}; allowed: "
                                  f"{', '.join(allowed)}")
            if type(v) is not int or v < 1:
                raise FormatError(f"{where}: manifest 'modules' sets {name}.{a} = {v!r}, "
                                  f"expected an int >= 1")
            setattr(mod, a, v)


def check_manifest(where: str, manifest: Any) -> dict[str, Any]:
    """``manifest`` when it is a manifest of this file version (kind ``zoo`` or ``graph``)
    with the value encoding and the dicts its readers expect; FormatError otherwise."""
    if isinstance(manifest, dict) and manifest.get("kind", "zoo") not in ("zoo", "graph"):
        raise FormatError(f"{where}: manifest kind={str(manifest.get('kind'))[:40]!r}, "
                          "expected 'zoo' (absent) or 'graph'")
    if not isinstance(manifest, dict) or manifest.get("prunebench_model_file") != FILE_VERSION:
        got = manifest.get("prunebench_model_file") if isinstance(manifest, dict) else None
        raise FormatError(f"{where}: manifest prunebench_model_file={got!r}, expected "
                          f"{FILE_VERSION} (not a prunebench model file of this version)")
    if manifest.get("values") not in VALUE_ENCODINGS:
        raise FormatError(f"{where}: manifest values={manifest.get('values')!r}, expected one "
                          f"of {', '.join(VALUE_ENCODINGS)}")
    for key in ("fallbacks", "modules", "info", "planner"):
        if not isinstance(manifest.get(key, {}), dict):
            raise FormatError(f"{where}: manifest {key!r} should be a dict")
    if not all(isinstance(v, str) for v in manifest.get("fallbacks", {}).values()):
        raise FormatError(f"{where}: manifest 'fallbacks' should map layers to reasons (strings)")
    _check_provenance(where, manifest)
    return manifest


def _check_provenance(where: str, manifest: dict) -> None:
    """The manifest's pruning settings (``info.prune``, which ``bench FILE`` stores in the
    results database) and planner records (shown by ``inspect``) have the types their
    readers expect: a crafted file is refused here, not by an AttributeError or a bad row."""
    prune = manifest.get("info", {}).get("prune", {})
    if not isinstance(prune, dict):
        raise FormatError(f"{where}: manifest info.prune should be a dict, got "
                          f"{type(prune).__name__}")
    for key in ("method", "scope", "schedule"):
        v = prune.get(key)
        if v is not None and (not isinstance(v, str) or len(v) > 64):
            raise FormatError(f"{where}: manifest info.prune.{key} = {v!r:.60} should be a "
                              "name (a string of at most 64 characters)")
    for key in ("sparsity_achieved", "sparsity_requested"):
        v = prune.get(key)
        if v is not None and (type(v) not in (int, float) or not 0.0 <= v <= 1.0):
            raise FormatError(f"{where}: manifest info.prune.{key} = {v!r:.60} should be a "
                              "number in [0, 1]")
    layers = manifest.get("planner", {}).get("layers", {})
    if not isinstance(layers, dict):
        raise FormatError(f"{where}: manifest planner.layers should be a dict")
    for name, record in layers.items():
        times = record.get("times_ms", {}) if isinstance(record, dict) else None
        if not isinstance(times, dict) or not isinstance(record.get("reason", ""), str):
            raise FormatError(f"{where}: manifest planner.layers[{name!r}] should be a dict "
                              "with a 'reason' string and 'times_ms' {format: ms}")
