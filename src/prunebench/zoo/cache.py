"""Where prunebench keeps generated data and trained checkpoints."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$PRUNEBENCH_CACHE`` if set, else ``~/.cache/prunebench``."""
    root = os.environ.get("PRUNEBENCH_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "prunebench"
    path.mkdir(parents=True, exist_ok=True)
    return path
