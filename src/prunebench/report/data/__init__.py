"""Stored rows -> the tables a report shows. Everything here is computed from the database;
nothing is measured. One module per table family: :mod:`.study` (the rows as data frames and
the cache), :mod:`.accuracy`, :mod:`.latency`, :mod:`.size`, :mod:`.controls`, :mod:`.pareto`;
this package re-exports their public names (``from prunebench.report import data as D`` then
``D.latency_table(d)``).

Conventions
-----------
* ``sparsity`` is the requested grid value (0 = the dense model); the achieved one is kept as
  ``sparsity_achieved``.
* Speedup = batch-matched latency of the *unpruned* model run densely by PyTorch
  (``torch-dense``, format ``dense``, fp32, same batch and threads) / the row's latency. Where
  no torch-dense row exists, the fastest dense-format row of the unpruned model is the baseline.
* Size ratio = file bytes / the unpruned model's dense fp32 file.
* Accuracy per configuration = mean and standard deviation over seeds (``n`` seeds).
"""
from __future__ import annotations

from .accuracy import (accuracy_by_values, accuracy_table, at_chance_count, dead_units_table,
                       task_metrics_table, unconverged_count)
from .controls import controls_table, quant_table
from .latency import (BEATS, RUN_PROFILE_KEYS, crossover_table, dense_engines_table,
                      latency_table, machine_table, profile_table, run_profile_table,
                      theoretical_speedup)
from .pareto import pareto_front, pareto_points
from .size import crossing, layer_size_crossover, size_crossover_table, size_table
from .study import (REFERENCE_METHODS, STUDY_KINDS, StudyData, cached_table, load,
                    reference_method, sample_std)

__all__ = [
    "BEATS", "REFERENCE_METHODS", "RUN_PROFILE_KEYS", "STUDY_KINDS", "StudyData",
    "accuracy_by_values", "accuracy_table", "at_chance_count", "cached_table",
    "controls_table", "crossing", "crossover_table", "dead_units_table",
    "dense_engines_table", "latency_table", "layer_size_crossover", "load", "machine_table",
    "pareto_front", "pareto_points", "profile_table", "quant_table", "reference_method",
    "run_profile_table", "sample_std", "size_crossover_table", "size_table",
    "task_metrics_table", "theoretical_speedup", "unconverged_count",
]
