"""Pruning: score weights, select what to remove, apply it on a schedule, and account for it.

Scoring (:mod:`.scores`), granularity (:mod:`.granularity`), scope (:mod:`.select`), masks
(:mod:`.masks`), structural removal (:mod:`.structured`), schedules (:mod:`.schedules`) and
accounting (:mod:`.accounting`) are separate modules; :func:`prune` composes them.

Examples
--------
>>> import prunebench as pb                                                # doctest: +SKIP
>>> model, data = pb.zoo.load("mnist1d-mlp")                               # doctest: +SKIP
>>> result = pb.pruning.prune(model, "magnitude", 0.9, scope="global", finetune=data)  # doctest: +SKIP
>>> result.report()["totals"]["theoretical_speedup"]                       # doctest: +SKIP
"""
from .accounting import MacCount, count_macs, sparsity_report
from .api import METHODS, MethodSpec, PruneResult, prune
from .masks import MaskKeeper, apply_masks
from .schedules import SCHEDULES
from .scores import SCORES
from .select import SCOPES
from .targets import DEFAULT_LAYERS_DOC, prunable_layers, select_layers

__all__ = ["prune", "PruneResult", "METHODS", "MethodSpec", "SCOPES", "SCHEDULES",
           "SCORES", "count_macs", "MacCount", "sparsity_report", "apply_masks", "MaskKeeper",
           "DEFAULT_LAYERS_DOC", "prunable_layers", "select_layers"]
