"""Model zoo and datasets (registries), with a trained-checkpoint cache."""
from .datasets import DATASETS, Dataset, load_dataset
from .models import (MODELS, SEED_MAX, ModelSpec, build, check_seed, count_params,
                     finetune_defaults, get_spec, load)
from .tasks import TASK_METRICS, task_metrics

__all__ = ["DATASETS", "Dataset", "load_dataset", "MODELS", "ModelSpec", "build",
           "count_params", "finetune_defaults", "get_spec", "load", "TASK_METRICS",
           "task_metrics", "SEED_MAX", "check_seed"]
