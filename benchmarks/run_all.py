"""`make bench`: the performance suites. They report figures; they never decide correctness.

Runs one suite at a time (timings on a shared 2-core machine are noise otherwise)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = [
    # dense baseline of the zoo at batch 1 (threads 1 and 2) into runs/bench.sqlite
    [sys.executable, "-m", "prunebench", "bench", "mnist1d-cnn", "--batch", "1", "--db",
     "runs/bench.sqlite"],
    [sys.executable, "-m", "prunebench", "bench", "mlp-4096", "--batch", "1", "--threads", "2",
     "--db", "runs/bench.sqlite"],
]
SUITES += [[sys.executable, str(p)] for p in sorted(HERE.glob("bench_*.py"))]


def main() -> int:
    failed = 0
    for cmd in SUITES:
        print("$", " ".join(Path(c).name if c == sys.executable else c for c in cmd), flush=True)
        failed += subprocess.run(cmd).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
