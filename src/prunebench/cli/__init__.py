"""The ``prunebench`` command: thin Typer + Rich wrappers over the public API, one module per
command or family of commands (:mod:`.models`, :mod:`.bench`, :mod:`.kernels`, :mod:`.prune`,
:mod:`.plan`, :mod:`.study`, :mod:`.results`), the options and checks they share in
:mod:`.options`, and the consoles and the one JSON printer in :mod:`.output`. :mod:`.app`
registers the commands and holds :func:`main`."""
from .app import app, entry, main

__all__ = ["app", "entry", "main"]
