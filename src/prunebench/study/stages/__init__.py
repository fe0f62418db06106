"""The work of each job kind, one module per stage: :mod:`.prune`, :mod:`.size` (with the
format plans of :mod:`.plan`), :mod:`.timing` (verify + time), :mod:`.profile` and
:mod:`.quant`. Each returns a :class:`~prunebench.study.rows.ResultRow` that the executor
stores; none of them writes to the database. The executor calls them through this package
(``stages.size_job``), the one door to them."""
from .common import Inputs, Skip, VerifyFailed, inputs
from .plan import auto_plan, auto_summary, matrix_plan, selected_modules
from .profile import find_module, profile_layers
from .prune import (CACHE_LIMIT_BYTES, MASK_GRID, cache_pruned, downsample, load_pruned,
                    mask_pictures, prune_job)
from .quant import quant_job
from .size import size_job
from .timing import SETTLE_S, beside, latency_row, plan_summary, time_call, verify

__all__ = ["CACHE_LIMIT_BYTES", "Inputs", "MASK_GRID", "SETTLE_S", "Skip", "VerifyFailed", "auto_plan",
           "auto_summary", "beside", "cache_pruned", "downsample", "find_module", "inputs",
           "latency_row", "load_pruned", "mask_pictures", "matrix_plan", "plan_summary",
           "profile_layers", "prune_job", "quant_job", "selected_modules", "size_job",
           "time_call", "verify"]
