"""Model zoo and datasets (registries), with a trained-checkpoint cache."""
from .datasets import DATASETS, Dataset, load_dataset
from .models import MODELS, ModelSpec, build, count_params, get_spec, load

__all__ = ["DATASETS", "Dataset", "load_dataset", "MODELS", "ModelSpec", "build",
           "count_params", "get_spec", "load"]
