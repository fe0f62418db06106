"""Engines behind one protocol (:class:`Engine`), looked up in :data:`ENGINES`."""
from .base import ENGINES, Engine
from . import torch_dense  # noqa: F401  (registers torch-dense)


def compile(model, engine: str = "torch-dense", format: str = "dense", *, values: str = "fp32",
            threads: int = 1):
    """Bind ``model`` to ``engine`` with its pruned layers in ``format``."""
    eng = ENGINES.get(engine)
    if not eng.supports(format):
        from ..errors import BadInputError

        raise BadInputError(f"engine {engine!r} cannot run format {format!r}; it runs: "
                            + ", ".join(eng.formats))
    return eng.compile(model, format, values=values, threads=threads)


__all__ = ["ENGINES", "Engine", "compile"]
