"""Task metrics of the zoo models whose quality is not a test-split accuracy."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import user
from .datasets import load_dataset
from .models import get_spec

#: zoo name -> what :func:`task_metrics` reports for it
TASK_METRICS = {
    "minilm": ("lee_spearman", "lee_pearson", "polarity_accuracy", "fidelity_cosine"),
    "lee-charlstm": ("bits_per_char",),
}


def task_metrics(name: str, model: nn.Module,
                 dense_model: nn.Module | None = None) -> dict[str, Any] | None:
    """The task metrics of zoo model ``name`` computed on ``model`` (dense or pruned; an
    ``nn.Module``), or None for models judged by accuracy alone.

    ``minilm``: ``lee_spearman``, ``lee_pearson`` (cosine vs human ratings, 1,225 Lee document
    pairs), ``polarity_accuracy`` (logistic-regression probe, 5-fold CV) and
    ``fidelity_cosine`` (mean cosine to ``dense_model``'s embeddings; 1.0 without one).
    ``lee-charlstm``: ``bits_per_char`` on the held-out text, with ``unigram_bits_per_char``
    (and ``bits_per_char_dense`` when ``dense_model`` is given).

    Examples
    --------
    >>> model, _ = prunebench.zoo.load("minilm")                 # doctest: +SKIP
    >>> task_metrics("minilm", model)["lee_spearman"]            # doctest: +SKIP
    """
    if name == "minilm":
        from . import minilm

        return minilm.task_metrics(model, dense_model)
    if name == "lee-charlstm":
        from . import charlstm

        return charlstm.task_metrics(model, dense_model)
    if user.is_user_model(name):   # --model module:factory: fidelity to the dense model
        return fidelity(name, model, dense_model)
    return None


def fidelity(name: str, model: nn.Module, dense_model: nn.Module | None = None
             ) -> dict[str, Any]:
    """Fidelity of ``model`` to ``dense_model`` (itself without one) on the test inputs of
    the user model's ``--data``, else 64 example inputs: ``fidelity_top1`` (argmax agreement
    over the last dim), ``fidelity_cosine`` (mean cosine per example), ``fidelity_max_abs``."""
    spec = get_spec(name)
    if spec.dataset:
        x = load_dataset(spec.dataset).x_test[:256]
    else:
        x = spec.example_input(64, 1)

    def run(m: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            y = m(x)
        y = y[0] if isinstance(y, (tuple, list)) else y
        return torch.as_tensor(y).detach().float().reshape(len(x), -1)

    out = run(model)
    ref = out if dense_model is None else run(dense_model)
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=1, eps=1e-12)
    return {"fidelity_top1": float((out.argmax(1) == ref.argmax(1)).float().mean()),
            "fidelity_cosine": float(cos.mean()),
            "fidelity_max_abs": float((out - ref).abs().max()), "fidelity_inputs": len(x)}
