"""Sparse inference runtime: the compressed-model file (and, later, sparse layers)."""
from .modelfile import encode_model, load_model, save_model

__all__ = ["encode_model", "load_model", "save_model"]
