"""What the runtime asks about a storage format before it encodes a weight matrix: the options
its ``from_dense`` takes, the options ``compile()`` and the model files pass on (with their
defaults), and whether a matrix fits it. Each answer comes from the format's class
(:class:`prunebench.formats.Format`), never from its name. Shared by
:func:`~prunebench.runtime.compile.compile`, the planner, the model files
(:mod:`~prunebench.runtime.modelfile`, :mod:`~prunebench.runtime.graphfile`) and the commands.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..formats import FORMATS


def options_for(fmt: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Keep only the options the format's ``from_dense`` understands (none for a name that is
    not a registered format, such as ``"auto"``)."""
    keys = tuple(FORMATS.get(fmt).option_defaults) if fmt in FORMATS else ()
    return {k: opts[k] for k in keys if opts.get(k) is not None}


def misfit(fmt: str, W: np.ndarray, opts: dict[str, Any]) -> str | None:
    """Why ``W`` cannot be stored in ``fmt`` with ``opts`` (a matrix that is not N:M sparse for
    ``nm``), or None when it can."""
    return FORMATS.get(fmt).misfit(W, **opts) if fmt in FORMATS else None


class RuntimeOptions(Mapping[str, dict[str, Any]]):
    """{format: {option: default}} of the formats that take options through ``compile()``,
    read from the registry at each use (a format registered later is included)."""

    def _items(self) -> dict[str, dict[str, Any]]:
        return {name: dict(cls.runtime_options) for name in FORMATS
                for cls in (FORMATS.get(name),) if cls.runtime_options}

    def __getitem__(self, fmt: str) -> dict[str, Any]:
        return self._items()[fmt]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


#: options each format takes from ``compile(..., **format_opts)``, with the runtime's defaults
FORMAT_OPTIONS = RuntimeOptions()


def runtime_option_keys() -> tuple[str, ...]:
    """Every option name ``compile()`` passes to some format (``block``, ``n``, ``m``,
    ``slice_height`` for the built-in formats), in registry order."""
    return tuple(dict.fromkeys(k for opts in FORMAT_OPTIONS.values() for k in opts))


def runtime_options(fmt: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options ``fmt`` runs with: ``given`` where set (not None), else the runtime's
    default; {} for a format that takes none."""
    defaults = FORMAT_OPTIONS.get(fmt, {})
    return {k: (given[k] if given.get(k) is not None else v) for k, v in defaults.items()}

