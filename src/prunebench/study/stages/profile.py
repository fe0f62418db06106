"""The profile stage: the time of each layer of a compiled model, from forward hooks."""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import torch
from torch import nn

from ...measure.timer import Timer
from .common import Skip


def find_module(fn: Callable[..., Any], depth: int = 3) -> nn.Module | None:
    """The torch module behind a compiled callable, if one can be found: the callable itself,
    an attribute ``module`` / ``model``, or a module its closure holds (through decorators'
    ``__wrapped__`` and closed-over functions, ``depth`` levels deep)."""
    if isinstance(fn, nn.Module):
        return fn
    if depth < 0:
        return None
    for attr in ("module", "model", "net"):
        m = getattr(fn, attr, None)
        if isinstance(m, nn.Module):
            return m
    inner = [getattr(fn, "__wrapped__", None), getattr(fn, "__self__", None)]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            inner.append(cell.cell_contents)
        except ValueError:
            continue
    for v in inner:
        if isinstance(v, nn.Module):
            return v
    for v in inner:
        if v is not None and v is not fn and callable(v):
            found = find_module(v, depth - 1)
            if found is not None:
                return found
    return None


def profile_layers(fn: Callable[..., Any], x: torch.Tensor, threads: int,
                   measure: dict[str, Any]) -> dict[str, Any]:
    """Per-layer time of ``fn(x)`` with forward pre/post hooks on the leaf modules of the
    module behind ``fn``; ``other`` is what the layers do not account for (Python glue,
    activations outside modules, the engine's own work)."""
    module = find_module(fn)
    if module is None:
        raise Skip("the engine's compiled callable exposes no torch module to hook")
    leaves = [(n, m) for n, m in module.named_modules()
              if n and not any(True for _ in m.children())]
    if not leaves:
        raise Skip("the compiled module has no sub-modules to time")
    spent: dict[str, float] = {n: 0.0 for n, _ in leaves}
    starts: dict[str, float] = {}
    handles = []
    for name, mod in leaves:
        handles.append(mod.register_forward_pre_hook(
            lambda *_a, n=name: starts.__setitem__(n, time.perf_counter())))
        handles.append(mod.register_forward_hook(
            lambda *_a, n=name: spent.__setitem__(n, spent[n] + time.perf_counter()
                                                  - starts.pop(n, time.perf_counter()))))
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(max(1, measure["warmup"])):
                fn(x)
            for n in spent:
                spent[n] = 0.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a noisy IQR: the per-layer split is a mean
                m = Timer(lambda: fn(x), warmup=0, min_runs=measure["min_runs"],
                          min_time=measure["min_time"],
                          max_time=max(measure["max_time"], measure["min_time"])).run()
            calls = m.n
            total = sum(m.samples) / calls
    finally:
        for h in handles:
            h.remove()
    # a compiled wrapper holds the rewritten model as ``.model``: report the model's own names
    strip = "model." if all(n.startswith("model.") for n, _ in leaves) else ""
    layers = [{"name": n[len(strip):], "type": type(m).__name__, "ms": spent[n] / calls * 1e3}
              for n, m in leaves if spent[n] > 0]
    other = max(0.0, total * 1e3 - sum(lay["ms"] for lay in layers))
    return {"layers": layers, "other_ms": other, "total_ms": total * 1e3, "calls": calls,
            "module": type(module).__name__}
