"""What every command prints through: the two Rich consoles and the one JSON printer that
every ``--json`` output goes through."""
from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Rich assumes 80 columns when not on a terminal; tables of figures need more.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def emit_json(doc: Any) -> None:
    """Print ``doc`` on stdout as one JSON document (2-space indent, then a newline)."""
    sys.stdout.write(json.dumps(doc, indent=2, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """What ``json`` cannot write by itself: NumPy and torch scalars as Python numbers, sets
    as lists, anything else (paths) as its text."""
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, frozenset)):
        return list(o)
    return str(o)  # a Path, or anything else a summary carries
