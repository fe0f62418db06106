import os
from pathlib import Path

import pytest

# Trained checkpoints are shared between tests (and with `make demo`) through this cache.
os.environ.setdefault("PRUNEBENCH_CACHE",
                      str(Path(__file__).resolve().parents[1] / ".cache" / "prunebench"))


@pytest.fixture
def fake_clock():
    """A clock that advances by the durations a test scripts."""

    class Clock:
        def __init__(self):
            self.t = 0.0
            self.step = 0.01

        def __call__(self):
            return self.t

        def advance(self, dt=None):
            self.t += self.step if dt is None else dt

    return Clock()
