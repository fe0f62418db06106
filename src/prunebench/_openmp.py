"""How idle OpenMP threads wait in a prunebench process: passively, unless the user chose.

PyTorch loads its GNU OpenMP runtime into the global symbol namespace when it is imported, and
numba's ``omp`` threading layer (the kernels') then runs on that same runtime: one pool of
threads for both. By default GNU OpenMP lets a thread that waits for work, or for its peer at
the end of a parallel loop, spin for 300,000 rounds (milliseconds) before it sleeps. On a
machine with no free core that spin is taken from the thread it waits for, and a short 2-thread
kernel call waits scheduler slices for its peer (RELIABILITY.md, "Threads under load", has the
figures). So ``OMP_WAIT_POLICY=PASSIVE`` is in the environment while torch loads the runtime
(which reads it then, once), and removed again, so child processes and libraries loaded later
see the user's environment. A parallel call then wakes its peer instead of finding it spinning.

Set ``OMP_WAIT_POLICY`` (or ``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME``) to choose otherwise; it is
left alone. A process that imported torch before prunebench keeps OpenMP's default.
"""
from __future__ import annotations

import os
import sys

#: environment variables through which a user chooses how OpenMP threads wait
USER_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def decide(environ, torch_loaded: bool) -> str | None:
    """The reason to leave the wait policy alone, or None to make it passive."""
    chosen = [f"{k}={environ[k]}" for k in USER_WAIT_VARS if k in environ]
    if chosen:
        return "set by the user: " + ", ".join(chosen)
    if torch_loaded:
        return "OpenMP's default (torch was imported before prunebench)"
    return None


def start() -> str:
    """Import torch with OpenMP's wait policy set to passive; returns the policy in words."""
    reason = decide(os.environ, "torch" in sys.modules)
    if reason is not None:
        return reason
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        import torch  # noqa: F401  (loads the OpenMP runtime, which reads the variable now)
    finally:
        del os.environ["OMP_WAIT_POLICY"]
    return "passive"


#: how idle OpenMP threads wait in this process (see the module docstring)
WAIT_POLICY = start()
