"""The planner's timing cache: milliseconds per machine, keyed by a digest of everything
that makes a timing (the layer's weights and input shape, the settings, the code)."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import torch


class TimingCache:
    """{key: milliseconds} of one machine, as JSON under the zoo cache folder; written
    atomically (a temporary file renamed over the old one)."""

    def __init__(self, machine_id: str, enabled: bool = True, root: Path | None = None):
        from ..zoo.cache import cache_dir

        self.enabled = enabled
        self.path = (root or cache_dir() / "planner") / f"{machine_id}.json"
        self.data: dict[str, float] = {}
        self.hits = 0
        if enabled and self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                if isinstance(loaded, dict):
                    self.data = {k: float(v) for k, v in loaded.items()
                                 if isinstance(v, (int, float)) and math.isfinite(v) and v > 0}
            except (OSError, ValueError):  # a damaged cache is measured again, not an error
                self.data = {}

    def get(self, key: str) -> float | None:
        v = self.data.get(key) if self.enabled else None
        if v is not None:
            self.hits += 1
        return v

    def put(self, values: dict[str, float]) -> None:
        self.data.update(values)

    def save(self) -> None:
        if not self.enabled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(self.data, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:  # an unwritable cache only costs a re-measurement next time
            pass


def digest(*parts: Any) -> str:
    """A short hex digest of tensors (shape, dtype and bytes) and JSON-able values."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            t = p.detach().contiguous().cpu()
            h.update(str((tuple(t.shape), str(t.dtype))).encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"|")
    return h.hexdigest()[:24]
