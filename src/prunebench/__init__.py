"""prunebench: which way of storing a pruned network's weights makes inference smaller and
faster on ordinary CPUs, and what it costs in accuracy — answered with measurements.

Examples
--------
>>> import prunebench as pb                                                  # doctest: +SKIP
>>> model, data = pb.zoo.load("mnist1d-cnn")
>>> pruned = pb.prune(model, "magnitude", 0.9, scope="global", finetune=data).model
>>> runnable = pb.compile(pruned, "csr", engine="native")
>>> planned = pb.plan(pruned, data.x_test[:1])     # a format per layer, measured here
>>> fastest = planned.compile(pruned)
>>> pb.verify(runnable, pruned, data.x_test, data.y_test)
>>> m = pb.measure_latency(runnable, data.x_test[:1])
>>> pb.save("model.pbz", pruned, zoo_name="mnist1d-cnn", format="csr")
>>> model2, manifest = pb.load("model.pbz")

The heavy packages (numba kernels, torch-pruning, onnxruntime) load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from . import _openmp  # noqa: F401  (first: OpenMP's wait policy is read when torch loads it)
from . import errors, zoo
from . import usermodel  # noqa: F401  (builds the user models a parent process registered)
from .errors import BadInputError, FormatError, PrunebenchError, VerificationError

if TYPE_CHECKING:
    import os

    import torch
    from torch import nn

    from .formats.base import Format
    from .measure import Measurement
    from .planner import Plan
    from .pruning import PruneResult
    from .runtime import Verification

__version__ = "0.1.0"


def prune(model: nn.Module, method: str = "magnitude", sparsity: float = 0.9,
          **options: Any) -> PruneResult:
    """Prune a copy of ``model``; see :func:`prunebench.pruning.prune`."""
    from .pruning import prune as _prune

    return _prune(model, method, sparsity, **options)


def encode(model: nn.Module, format: str | dict[str, str] = "csr", *,
           example_input: torch.Tensor | None = None,
           **options: Any) -> tuple[dict[str, Format], dict[str, dict]]:
    """Encode every prunable weight matrix; see :func:`prunebench.runtime.encode_model`.

    ``format="auto"`` lets the planner choose per layer (:func:`plan`, latency objective,
    timed on ``example_input``, which is then required); planner options (``threads``,
    ``engine``, ``objective``, ``budget_ms``, ...) go to :func:`plan`."""
    from .runtime import encode_model

    if format == "auto":
        if example_input is None:
            raise BadInputError("format='auto' plans by measuring: pass example_input= (a model "
                                "input of the batch to plan for)")
        import inspect

        from .planner import plan as _plan
        from .runtime.compile import FORMAT_OPTIONS

        # the planner's own keywords go to it alone; format options to it and to the encoder,
        # so the file holds the layouts (e.g. the bsr block) that were timed
        own = {k for k, p in inspect.signature(_plan).parameters.items()
               if p.kind is p.KEYWORD_ONLY and k != "values"}
        shared = {k for opts in FORMAT_OPTIONS.values() for k in opts}
        planned = _plan(model, example_input, values=options.get("values", "fp32"),
                        **{k: options.pop(k) for k in list(options) if k in own},
                        **{k: v for k, v in options.items() if k in shared})
        options["keep_smaller"] = False  # the planner chose each format knowing its bytes
        return encode_model(model, planned.matrix_formats, **options)
    return encode_model(model, format, **options)


def plan(model: nn.Module, example_input: torch.Tensor, **options: Any) -> Plan:
    """Measure and choose a format per pruned layer; see :func:`prunebench.planner.plan`."""
    from .planner import plan as _plan

    return _plan(model, example_input, **options)


def compile(model: nn.Module, plan: str | dict[str, str] = "csr", *, engine: str = "native",
            values: str = "fp32", threads: int = 1,
            **options: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Bind ``model`` to ``engine`` with its pruned layers in ``plan``; see
    :func:`prunebench.engines.compile`."""
    from .engines import compile as _compile

    return _compile(model, engine, plan, values=values, threads=threads, **options)


def verify(run: Callable[[torch.Tensor], torch.Tensor], reference: nn.Module, x: torch.Tensor,
           y: torch.Tensor | None = None, **options: Any) -> Verification:
    """Compare ``run`` with the dense ``reference``; see :func:`prunebench.runtime.verify`."""
    from .runtime import verify as _verify

    return _verify(run, reference, x, y, **options)


def measure_latency(run: Callable[[torch.Tensor], Any], x: torch.Tensor, *, threads: int = 1,
                    **timer_options: Any) -> Measurement:
    """Time ``run(x)`` with :class:`prunebench.measure.Timer`; returns a Measurement.

    (Not ``pb.measure``: that name is the :mod:`prunebench.measure` package, which Python
    binds on the package as soon as anything imports it.)"""
    import torch

    from .measure import Timer

    torch.set_num_threads(threads)

    def call() -> Any:
        with torch.inference_mode():
            return run(x)

    return Timer(call, **timer_options).run(batch=len(x), threads=threads)


def save(path: str | os.PathLike, model: nn.Module, **options: Any) -> dict:
    """Write a compressed model file; see :func:`prunebench.runtime.save_model`."""
    from .runtime import save_model

    return save_model(path, model, **options)


def load(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Load a compressed model file without pickle; returns (model, manifest)."""
    from .runtime import load_model

    return load_model(path)


__all__ = ["errors", "zoo", "prune", "encode", "plan", "compile", "verify", "measure_latency", "save", "load",
           "BadInputError", "FormatError", "PrunebenchError", "VerificationError",
           "__version__"]
