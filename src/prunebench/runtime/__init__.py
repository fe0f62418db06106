"""Sparse inference runtime: the compressed-model file and verification against dense."""
from .modelfile import encode_model, load_model, save_model
from .verify import TOLERANCE, Verification, verify

__all__ = ["encode_model", "load_model", "save_model", "TOLERANCE", "Verification", "verify"]
