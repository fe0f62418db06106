"""The user's own model on the command line: ``--model package.module:factory`` (the user's
trusted code, imported), an ``.onnx`` file, or a graph model file, with ``--input-shape
1,40`` or ``--example-input FILE.npy`` and ``--data FILE.npz``.

The model is registered as a zoo entry of this process under its reference (and, through
the environment variable ``PRUNEBENCH_USER_MODELS``, of the child processes prunebench
starts), so ``bench``, ``prune``, ``pack`` and ``plan`` run it like a zoo model. Its weights
are the factory's (built under ``torch.manual_seed(seed)``, never trained here). Without
``--data`` its quality is its fidelity to the dense model
(:func:`prunebench.zoo.tasks.fidelity`).

The records live in :mod:`prunebench.zoo.user`, which the zoo and the model files ask;
this module, above both, builds a record's zoo entry and installs that builder there.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

import numpy as np
import torch

from .errors import BadInputError, PrunebenchError
from .zoo import user
from .zoo.models import ModelSpec

COMMANDS = ("bench", "prune", "pack", "plan")
OPTIONS = ("--model", "--input-shape", "--example-input", "--data")


# ---------------------------------------------------------------- loading the pieces


def import_factory(ref: str, cwd: str | None = None) -> Callable[[], Any]:
    """The callable ``package.module:factory`` names (the user's code, imported)."""
    import importlib

    mod, sep, attr = ref.partition(":")
    if not sep or not mod or not attr.isidentifier():
        raise BadInputError(f"--model: got {ref!r}; expected package.module:factory (a module "
                            "importable from the current folder or PYTHONPATH, and a function "
                            "in it that returns an nn.Module)")
    cwd = cwd or os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001 - the user's module may raise anything
        raise BadInputError(f"--model: {ref!r} does not import: module {mod!r}: "
                            f"{type(e).__name__}: {_line(e)}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise BadInputError(f"--model: module {mod!r} has no callable {attr!r}")
    return fn


def _line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def parse_shape(text: str) -> list[int]:
    try:
        dims = [int(d) for d in text.split(",")]
    except ValueError:
        dims = []
    if len(dims) < 2 or any(d < 1 for d in dims) or dims[0] != 1:
        raise BadInputError(f"--input-shape: got {text!r}; expected comma-separated sizes "
                            "with batch 1 first and at least one more, e.g. 1,40 or 1,3,32,32")
    return dims


def load_example(path: str) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - missing file, pickle, not .npy
        raise BadInputError(f"--example-input: {path!r} is not a .npy array file: "
                            f"{_line(e)}") from None
    if not isinstance(a, np.ndarray) or a.ndim < 1 or a.shape[0] < 1:
        raise BadInputError(f"--example-input: {path!r} should hold one array with a batch "
                            "dimension first")
    return a[:1]


def load_npz(path: str) -> dict[str, np.ndarray]:
    """x_test, y_test and optionally x_train, y_train from ``path`` (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise BadInputError(f"--data: {path!r} is not a .npz file of arrays: {_line(e)}") from None
    keys = ", ".join(sorted(arrays)) or "none"
    for k in ("x_test", "y_test"):
        if k not in arrays:
            raise BadInputError(f"--data: {path!r} has no {k} (its arrays: {keys}); expected "
                                "x_test and y_test, optionally x_train and y_train")
    if ("x_train" in arrays) != ("y_train" in arrays):
        raise BadInputError(f"--data: {path!r} has only one of x_train/y_train (its arrays: "
                            f"{keys}); give both or neither")
    for split in ("train", "test"):
        if f"x_{split}" not in arrays:
            continue
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer) \
                or len(y) == 0 or y.min() < 0:
            raise BadInputError(f"--data: y_{split} in {path!r} should be non-negative integer "
                                f"labels, one per row of x_{split} ({len(x)}); got "
                                f"{y.dtype} {list(y.shape)}")
    return arrays


# ---------------------------------------------------------------- registration


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(
        a, dtype=np.int64 if np.issubdtype(a.dtype, np.integer) else np.float32))


def register(rec: dict[str, Any], check: bool = True) -> str:
    """Register the user model ``rec`` describes as a zoo entry (and its data as a dataset);
    return its name. ``rec``: {name, factory | onnx | graph, input_shape, example, data, cwd}.
    With ``check`` the model must run on the example input and export to ONNX."""
    from . import zoo
    from .zoo.datasets import DATASETS, Dataset
    from .zoo.tasks import TASK_METRICS

    name = rec["name"]
    arrays = load_npz(rec["data"]) if rec.get("data") else None
    example = load_example(rec["example"]) if rec.get("example") else None
    shape = rec.get("input_shape")
    if example is not None:
        shape = list(example.shape)
    elif shape is None and arrays is not None:
        shape = [1, *arrays["x_test"].shape[1:]]
    if rec.get("factory"):
        fn = import_factory(rec["factory"], rec.get("cwd"))

        def build() -> torch.nn.Module:
            try:
                model = fn()
            except Exception as e:  # noqa: BLE001
                raise BadInputError(f"--model: {rec['factory']}() raised {type(e).__name__}: "
                                    f"{_line(e)}") from None
            if not isinstance(model, torch.nn.Module):
                raise BadInputError(f"--model: {rec['factory']}() returned "
                                    f"{type(model).__name__}, expected a torch.nn.Module")
            return model.eval()
    else:
        from .runtime.graphfile import GraphModel, load_onnx_file

        if rec.get("onnx"):
            def build() -> torch.nn.Module:
                return load_onnx_file(rec["onnx"], shape)
        else:
            from .runtime import load_model

            def build() -> torch.nn.Module:
                return load_model(rec["graph"])[0]
        if shape is None:   # the graph's own (a graph model knows its input shape)
            graph = build()
            shape = list(graph.input_shape) if isinstance(graph, GraphModel) else None
    if shape is None:
        raise BadInputError(f"--input-shape: {name} needs its input shape: give --input-shape "
                            "(e.g. 1,40), --example-input FILE.npy or --data FILE.npz")
    if arrays is not None and list(arrays["x_test"].shape[1:]) != list(shape[1:]):
        raise BadInputError(f"--data: x_test rows have shape {list(arrays['x_test'].shape[1:])}, "
                            f"but the model's input is {shape} (batch first)")

    def make_input(batch: int, seed: int) -> torch.Tensor:
        if example is not None:
            return _tensor(example).repeat(batch, *([1] * (example.ndim - 1)))
        g = torch.Generator().manual_seed(seed)
        return torch.randn((batch, *shape[1:]), generator=g)

    def weights(seed: int, progress: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build().state_dict()

    dataset = None
    if arrays is not None:
        dataset = f"npz:{rec['data']}"
        if dataset not in DATASETS:
            x_te, y_te = _tensor(arrays["x_test"]), _tensor(arrays["y_test"])
            # without a training split the CLI forces --finetune-steps 0 (rewrite_argv): the
            # test split stands in only so that code sizing batches by it has rows
            x_tr = _tensor(arrays["x_train"]) if "x_train" in arrays else x_te
            y_tr = _tensor(arrays["y_train"]) if "y_train" in arrays else y_te
            classes = int(max(y_te.max(), y_tr.max() if len(y_tr) else 0)) + 1
            data = Dataset(dataset, x_tr, y_tr, x_te, y_te, classes)
            DATASETS.add(dataset, lambda seed=0, _d=data: _d)
    if name not in zoo.MODELS:
        spec = ModelSpec(name, build, dataset, tuple(shape[1:]),
                         f"user model {name}", weights=weights, make_input=make_input)
        if check:
            _check_runs(spec, rec)
        zoo.MODELS.add(name, spec)
    TASK_METRICS[name] = user.FIDELITY
    user.remember(name, rec)
    return name


def _check_runs(spec: ModelSpec, rec: dict[str, Any]) -> None:
    """The model runs on its example input, and (a PyTorch model) exports to ONNX, which the
    model file needs: bad input is refused before any work."""
    model = spec.build()
    x = spec.example_input(1, 0)
    what = (f"--example-input {rec['example']}" if rec.get("example") else
            f"--input-shape {','.join(map(str, [1, *spec.input_shape]))}")
    try:
        with torch.no_grad():
            model(x)
    except PrunebenchError:
        raise
    except Exception as e:  # noqa: BLE001
        raise BadInputError(f"{what.split()[0]}: {what.split()[1]} does not fit {spec.name}: "
                            f"{type(e).__name__}: {_line(e)}") from None
    if rec.get("factory"):
        from .engines.onnx_engine import export_onnx

        try:
            export_onnx(model, x)
        except PrunebenchError as e:
            raise BadInputError(f"--model: {rec['factory']} cannot be exported to ONNX (the "
                                f"model file stores its graph): {e}") from None


# ---------------------------------------------------------------- the command line


def _graph_kind(path: str) -> bool:
    """Whether ``path`` is a prunebench graph file (header only; errors: leave it to the loader)."""
    try:
        from safetensors import safe_open

        with safe_open(path, framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("prunebench", "{}"))
        return meta.get("manifest", {}).get("kind") == "graph"
    except Exception:  # noqa: BLE001
        return False


def _pop(argv: list[str], opt: str) -> str | None:
    for i, a in enumerate(argv):
        if a == opt:
            if i + 1 >= len(argv):
                raise BadInputError(f"{opt}: needs a value")
            value = argv[i + 1]
            del argv[i:i + 2]
            return value
        if a.startswith(opt + "="):
            del argv[i]
            return a[len(opt) + 1:]
    return None


def rewrite_argv(argv: list[str]) -> list[str]:
    """Register the model that ``--model``/an ``.onnx`` file/a graph file names and give the
    command its name as MODEL; other commands pass through untouched."""
    argv = list(argv)
    if not argv or argv[0] not in COMMANDS:
        return argv
    cmd = argv[0]
    got = {opt: _pop(argv, opt) for opt in OPTIONS}
    ref, shape_text, example, data = (got[o] for o in OPTIONS)
    first = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
    onnx_file = first is not None and first.endswith(".onnx") and os.path.isfile(first)
    graph_file = (first is not None and not onnx_file and os.path.isfile(first)
                  and _graph_kind(first))
    if ref is None and not (onnx_file or graph_file):
        used = [o for o in OPTIONS[1:] if got[o] is not None]
        if used:
            raise BadInputError(f"{used[0]}: only with --model package.module:factory or an "
                                ".onnx / graph model file as MODEL")
        return argv
    if ref is not None and first is not None:
        raise BadInputError(f"--model: got both --model {ref} and MODEL {first!r}; give one")
    if shape_text is not None and example is not None:
        raise BadInputError("--input-shape: give --input-shape or --example-input, not both")
    for opt, path in (("--example-input", example), ("--data", data)):
        if path is not None and not os.path.isfile(path):
            raise BadInputError(f"{opt}: file {path!r} does not exist")
    rec = {"name": ref or first, "input_shape": parse_shape(shape_text) if shape_text else None,
           "example": os.path.abspath(example) if example else None,
           "data": os.path.abspath(data) if data else None, "cwd": os.getcwd()}
    if ref is not None:
        rec["factory"] = ref
    elif first is not None:   # an .onnx or graph file (without one we returned above)
        rec["onnx" if onnx_file else "graph"] = os.path.abspath(first)
        if "--method" in argv or cmd in ("prune", "pack", "plan"):
            what = "an ONNX graph" if onnx_file else "a graph model file"
            raise BadInputError(
                f"MODEL: {first!r} is {what}: prunebench prunes, packs and plans PyTorch "
                "modules and cannot turn an ONNX graph into one (the converters onnx2torch, "
                "onnx2torch2 and onnx2pytorch all need torchvision, which does not install "
                "beside the pinned torch); bring the model as --model package.module:factory, "
                "or benchmark the graph dense: prunebench bench FILE.onnx")
        engine = _pop(argv, "--engine")
        if engine not in (None, "onnxruntime"):
            raise BadInputError(f"--engine: {engine} cannot run {first!r} (an ONNX graph); "
                                "it runs on: onnxruntime")
        argv += ["--engine", "onnxruntime"]
    if data is not None:
        arrays = load_npz(data)
        if "x_train" not in arrays:
            steps = _pop(argv, "--finetune-steps")
            if steps not in (None, "0"):
                raise BadInputError(f"--finetune-steps: {steps} needs x_train and y_train in "
                                    f"--data {data}; it has only x_test and y_test")
            argv += ["--finetune-steps", "0"]
    name = register(rec)
    if ref is not None:
        argv.insert(1, name)
    return argv


def _register_unchecked(rec: dict[str, Any]) -> str:
    return register(rec, check=False)


# a child process builds the records its parent registered on first look-up (zoo.get_spec)
user.set_builder(_register_unchecked)
