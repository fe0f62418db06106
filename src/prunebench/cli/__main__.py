"""``python -m prunebench.cli``: the same as ``prunebench`` (and ``python -m prunebench``)."""
from .app import entry

entry()
