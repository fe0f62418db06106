"""The size stage: the compressed model file of a pruned model in the job's format, its
bytes per layer, and the accuracy of the model loaded back from it."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..jobs import Job
from ..rows import JobStatus, ResultRow
from .common import Skip
from .plan import auto_plan, auto_summary, matrix_plan, selected_modules

if TYPE_CHECKING:
    from ...zoo.datasets import Dataset


def size_job(job: Job, model: nn.Module, data: Dataset | None, workdir: Path,
             options: dict[str, Any],
             accuracy_cache: dict[str, tuple[float, float]]) -> ResultRow:
    """Write the compressed model file (the pruned layers' matrices in the job's format, every
    one of them even where dense would be smaller; the other layers dense); its bytes,
    per-layer bytes, and the accuracy of the model loaded back from it."""
    from ...errors import BadInputError
    from ...formats import FORMATS, approximating_formats, break_even_sparsity
    from ...runtime import load_model, save_model
    from ...train import evaluate

    fmt_name, values = job.encoding()
    t0 = time.perf_counter()
    fd, tmp = tempfile.mkstemp(dir=workdir, suffix=".pbm")
    os.close(fd)
    try:
        opts: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        auto = None
        fmt: str | dict[str, str]
        if fmt_name == "auto":
            # the plan of the deployment default (batch 1, one thread, our kernels, fp32
            # timings), whatever the file's value encoding: one plan per pruned model
            auto = auto_plan(job, model, data, options=opts, values="fp32")
            fmt = auto.matrix_formats or "dense"
        else:
            fmt = fmt_name if fmt_name == "dense" else matrix_plan(
                model, selected_modules(model, job.plan.layers), fmt_name)
        try:
            plan = save_model(tmp, model, zoo_name=job.model, seed=job.seed, format=fmt,
                              values=values, keep_smaller=False, **opts)
        except BadInputError as e:
            raise Skip(f"format {fmt_name} cannot encode this model: {e}") from None
        file_bytes = os.path.getsize(tmp)
        lossless_layout = fmt_name == "auto" or FORMATS.get(fmt_name).lossless
        accuracy = rel = None
        if data is not None:
            ck = values
            if lossless_layout and ck in accuracy_cache:
                accuracy, rel = accuracy_cache[ck]
            else:
                loaded, _ = load_model(tmp)
                x = data.x_test
                with torch.inference_mode():
                    ref, out = model(x), loaded(x)
                rel = float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
                accuracy = evaluate(loaded, data)
                if lossless_layout:
                    accuracy_cache[ck] = (accuracy, rel)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    layers = []
    for name, p in plan.items():
        shape = tuple(p["shape"])
        be = None
        if values == "fp32" and fmt_name != "auto" and fmt_name not in approximating_formats():
            try:
                be = break_even_sparsity(fmt_name, shape, **_estimate_opts(fmt_name, opts))
            except BadInputError:
                be = None
        layers.append({"name": name, "shape": list(shape), "format": p["format"],
                       "bytes": p["bytes"], "dense_fp32_bytes": 4 * shape[0] * shape[1],
                       "sparsity": p["sparsity"], "break_even_model": be})
    extra: dict[str, Any] = {"method_label": job.method_label, "latency_only": data is None,
             "layers": layers, "output_rel_error": rel, "format_options": options,
             "elapsed_s": time.perf_counter() - t0}
    if auto is not None:
        extra["auto_plan"] = auto_summary(auto)
    return ResultRow.of(job, JobStatus.OK, file_bytes=file_bytes, accuracy=accuracy,
                        extra=extra)


def _estimate_opts(fmt: str, opts: dict[str, Any]) -> dict[str, Any]:
    keep = {"bsr": ("block",), "nm": ("n", "m"), "rcsr": ("bits",), "ell": ("slice_height",)}
    return {k: opts[k] for k in keep.get(fmt, ()) if k in opts}
