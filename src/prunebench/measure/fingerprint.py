"""Machine fingerprint: what a latency figure depends on, stored with every result."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .profile import PROFILE_KEYS, current_profile

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "neon", "asimd", "sve")
LIBRARIES = ("prunebench", "torch", "numpy", "scipy", "numba", "onnxruntime", "torch-pruning",
             "ai-edge-litert")


def _cpuinfo() -> tuple[str, set[str]]:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return model, flags


def _mem_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str:
    """Commit of the prunebench checkout this code runs from ("unknown" when not a checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "-uno"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


@functools.lru_cache(maxsize=1)
def fingerprint() -> dict[str, Any]:
    """A JSON-able description of this machine; ``id`` hashes the parts that affect speed and
    the run profile (:mod:`.profile`; ``host_id`` the same without it)."""
    model, flags = _cpuinfo()
    fp = {
        "cpu": model,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "simd": sorted(f for f in SIMD_FLAGS if f in flags),
        "memory_bytes": _mem_total(),
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
        "python": sys.version.split()[0],
        "libraries": {lib: _version(lib) for lib in LIBRARIES},
        "git_commit": git_commit(),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS",
                                            "MKL_NUM_THREADS", *PROFILE_KEYS) if k in os.environ},
        "profile": current_profile(),
    }
    ident = {k: fp[k] for k in ("cpu", "arch", "cores", "simd", "memory_bytes", "os", "hostname")}
    fp["host_id"] = _digest(ident)
    # a profile is a different machine to the store (its rows never collide with the default
    # profile's); host_id ties the profiles of one machine together for the report
    fp["id"] = fp["host_id"] if fp["profile"] == "default" else _digest(dict(ident, profile=fp["profile"]))
    return fp


def _digest(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
