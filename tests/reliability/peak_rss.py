"""Peak RSS of a command run in a child process (shared by the reliability tests)."""
from __future__ import annotations

import subprocess
import sys
import time


def run_with_peak(args: list[str], timeout: float) -> tuple[int, int, str, str, float]:
    """(peak RSS bytes, exit status, stdout, stderr, seconds) of ``python -m ARGS``; the child
    reports its own peak RSS after the command (ru_maxrss of RUSAGE_SELF, in KiB on Linux)."""
    code = ("import resource, runpy, sys\n"
            f"sys.argv = {args!r}\n"
            "rc = 0\n"
            "try:\n"
            "    runpy.run_module(sys.argv[0], run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    rc = e.code if isinstance(e.code, int) else 1\n"
            "sys.stdout.write('\\nPEAK %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
            "sys.exit(rc)\n")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)
    seconds = time.perf_counter() - t0
    out, _, peak = proc.stdout.rpartition("PEAK")
    return int(peak) * 1024, proc.returncode, out, proc.stderr, seconds
