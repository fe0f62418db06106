"""Task metrics of the zoo models whose quality is not a test-split accuracy."""
from __future__ import annotations

from torch import nn

#: zoo name -> what :func:`task_metrics` reports for it
TASK_METRICS = {
    "minilm": ("lee_spearman", "lee_pearson", "polarity_accuracy", "fidelity_cosine"),
    "lee-charlstm": ("bits_per_char",),
}


def task_metrics(name: str, model: nn.Module, dense_model: nn.Module | None = None) -> dict | None:
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
    from ..usermodel import is_user_model

    if is_user_model(name):   # --model module:factory: fidelity to the dense model
        from ..usermodel import task_metrics as fidelity

        return fidelity(name, model, dense_model)
    return None
