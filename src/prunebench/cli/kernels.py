"""``prunebench kernels``: one weight matrix's product on every engine and format side by side
(the measuring is :mod:`prunebench.measure.kernel_bench`; this module checks the options and
renders the tables)."""
from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ..dtypes import VALUE_ENCODINGS
from ..errors import BadInputError
from .options import JsonDoc, parse_block
from .output import emit_json, err, out

DEFAULT_SPARSITIES = ",".join(str(s) for s in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99))


def _cache_note(meta: dict) -> str:
    """What the run's cache states did before each timed call (only the states it ran)."""
    from ..measure import kernel_bench as kb

    notes = {"warm": "warm = calls back to back",
             "cold": f"cold = {meta['flush_mib']} MiB streamed before every call (not timed)",
             "layer": f"layer = {meta['flush_mib']} MiB streamed, then a copy of the matrix "
                      "multiplied (neither timed)"}
    return "; ".join(notes[m] for m in kb.cache_modes(meta["cache"])) + "; "


def _floats(text: str, arg: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"{arg}: got {text!r}, expected comma-separated numbers") from None


def _ints(text: str, arg: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"{arg}: got {text!r}, expected comma-separated integers") from None


def kernels(shape: Annotated[Optional[str], typer.Option(
                "--shape", help="ROWSxCOLS (out x in) of W, comma-separated for several; @B "
                                "fixes a batch (4096x4096, 144x24@3136). Default: real layer "
                                "shapes")] = None,
            sparsity: Annotated[str, typer.Option(
                "--sparsity", help="comma-separated sparsities in [0, 1)")] = DEFAULT_SPARSITIES,
            pattern: Annotated[str, typer.Option(
                "--pattern", help="unstructured | block | nm")] = "unstructured",
            batch: Annotated[str, typer.Option("--batch",
                                               help="comma-separated batch sizes")] = "1,32",
            threads: Annotated[Optional[int], typer.Option(
                "--threads", help="threads (default: every core)")] = None,
            cache: Annotated[str, typer.Option("--cache", help="warm | cold | layer | both (warm,cold), or a comma list: cold = everything evicted "
                                "first; layer = the weights evicted, the code and input warm (a twin "
                                "matrix's product runs first, untimed)")] = "cold",
            values: Annotated[str, typer.Option(
                "--values", help="native value encodings, comma-separated: fp32, fp16, "
                                 "int8")] = "fp32",
            block: Annotated[str, typer.Option(
                "--block", help="block shape (pattern block, bsr)")] = "4x4",
            from_model: Annotated[Optional[str], typer.Option(
                "--from-model", help="benchmark a zoo model's pruned weight matrices "
                                     "instead")] = None,
            method: Annotated[Optional[str], typer.Option(
                "--method", help="pruning method for --from-model")] = None,
            all_shapes: Annotated[bool, typer.Option(
                "--all-shapes", help="add BERT FFN up, MiniLM FFN and LSTM shapes")] = False,
            repeats: Annotated[int, typer.Option("--repeats",
                                                 help="timed calls per candidate")] = 15,
            seed: Annotated[int, typer.Option("--seed", help="random matrices and inputs")] = 0,
            as_json: JsonDoc = False) -> None:
    """Time one weight matrix's product on every engine and format side by side: speedup vs
    torch-dense, bytes moved, GB/s and the fraction of the measured memory bandwidth, and the
    crossover sparsity per shape."""
    from ..measure import kernel_bench as kb
    from ..zoo import check_seed

    check_seed(seed)
    if pattern not in kb.PATTERNS:
        raise BadInputError(f"--pattern: got {pattern!r}; allowed: {', '.join(kb.PATTERNS)}")
    kb.cache_modes(cache)            # one clear line for a bad --cache
    sparsities = kb.check_sparsities(_floats(sparsity, "--sparsity"))
    batches = _ints(batch, "--batch")
    if not batches or any(b < 1 for b in batches):
        raise BadInputError(f"--batch: got {batch!r}; every batch must be an integer >= 1")
    if threads is not None:
        kb.check_kernel_threads(threads)
    if repeats < 1:
        raise BadInputError(f"--repeats: got {repeats}; expected an integer >= 1")
    vals = tuple(v.strip() for v in values.split(",") if v.strip())
    for v in vals or ("",):
        if v not in VALUE_ENCODINGS:
            raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_ENCODINGS)}")
    blk = parse_block(block)
    if (method is None) != (from_model is None):
        raise BadInputError("--from-model and --method go together: --from-model MODEL "
                            "--method M")
    matrices = None
    shapes = [kb.parse_shape(t) for t in shape.split(",")] if shape else None
    if from_model is not None and method is not None:
        from .. import zoo
        from ..pruning import METHODS

        zoo.get_spec(from_model)
        METHODS.get(method)
        if shape:
            raise BadInputError("--shape: not with --from-model (the model's matrices are used)")
        matrices = kb.model_matrices(from_model, method, sparsities, seed, progress=not as_json)
    elif shapes is None:
        shapes = list(kb.DEFAULT_SHAPES) + (list(kb.EXTRA_SHAPES) if all_shapes else [])
    progress = None if as_json else (lambda msg: err.print(f"[dim]{msg}[/]"))
    res = kb.run(shapes, sparsities, batches, pattern, threads, cache, vals, repeats=repeats,
                 rounds=3 if repeats >= 3 else 1, block=blk, seed=seed, matrices=matrices,
                 progress=progress)
    if as_json:
        emit_json(res)
        return
    render(res)


def render(res: dict[str, Any]) -> None:
    """One table per (shape, batch, cache) and the crossover table of a ``kernels`` run."""
    meta = res["meta"]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in res["rows"]:
        key = (tuple(r["shape"]), r.get("layer") or r["label"], r["batch"], r["cache"])
        groups.setdefault(key, []).append(r)
    for (shp, label, b, mode), rs in groups.items():
        load = rs[0].get("other_load_cores")
        t = Table(title=f"W {shp[0]}x{shp[1]} {label} — batch {b}, {mode} cache, "
                        f"{meta['threads']} thread(s)"
                        + (f" — other processes busy {load:.2f} cores" if load else ""))
        for c in ("sparsity", "engine", "format", "values", "ms", "vs dense", "vs torch csr",
                  "MB moved", "GB/s", "% bandwidth"):
            t.add_column(c, justify="right")
        for r in rs:
            vs_ts = r["speedup_vs_torch_sparse_csr"]
            t.add_row(f"{r['sparsity']:.2f}",
                      r["engine"] + (f" ({r['variant']})" if r.get("variant") else ""),
                      r["format"], r["values"],
                      f"{r['ms']:.3f}{'~' if r['noisy'] else ''}",
                      f"{r['speedup_vs_dense']:.2f}x", "" if vs_ts is None else f"{vs_ts:.2f}x",
                      f"{r['bytes'] / 1e6:.1f}", f"{r['gbps']:.1f}",
                      f"{100 * r['bandwidth_fraction']:.0f}%")
        out.print(t)
    t = Table(title="crossover: lowest sparsity where a sparse format beats torch-dense")
    for c in ("shape", "batch", "cache", "crossover", "by", "speedup", "native crossover"):
        t.add_column(c)
    for c in res["crossover"]:
        t.add_row(f"{c['shape'][0]}x{c['shape'][1]}" + (f" {c['layer']}" if c.get("layer") else ""),
                  str(c["batch"]), c["cache"],
                  "none" if c["sparsity"] is None else f"{c['sparsity']:.2f}",
                  "" if c["engine"] is None else f"{c['engine']} {c['format']}"
                  + (f" ({c['variant']})" if c.get("variant") else ""),
                  "" if c["speedup_vs_dense"] is None else f"{c['speedup_vs_dense']:.2f}x",
                  "none" if c["native_sparsity"] is None
                  else f"{c['native_sparsity']:.2f} ({c['native_format']})")
    out.print(t)
    out.print(f"streaming-read bandwidth {meta['stream_gbps']:.1f} GB/s ({meta['threads']} "
              f"threads); {_cache_note(meta)}"
              f"'~' = IQR above 10% of the median; {meta['seconds']:.0f} s")
    other = meta.get("other_load_cores")
    if other is not None and other > 0.1:
        err.print(f"[yellow]warning: other processes kept {other:.2f} cores busy during this "
                  "run; parallel timings stall when a core is taken: repeat on a quiet machine[/]")
