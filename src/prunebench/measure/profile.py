"""Run profiles: the machine as it comes (``default``) or a proxy for a Cortex-A class edge
board (``edge``): one thread and code for a 128-bit SIMD target.

A profile is a set of environment variables that libraries read once, when they load: numba's
target CPU for the kernels, PyTorch's ATen dispatch level, the ISA caps of oneDNN (PyTorch's
mkldnn, OpenVINO's CPU plugin) and MKL. They must be in place before numba compiles or torch
loads, so a command takes a profile by running itself again in a child process with them
(:func:`run_in_profile`); other children get them from :func:`profile_env`. ONNX Runtime
(MLAS picks its kernels by CPUID; no switch) and LiteRT/XNNPACK run as they come, on one
thread.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any, Mapping

from ..errors import BadInputError

PROFILES = ("default", "edge")
#: the variable naming the profile this process runs in
ENV_VAR = "PRUNEBENCH_PROFILE"


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def profile_vars(name: str) -> dict[str, str]:
    """The environment variables of profile ``name`` (the default profile sets none)."""
    check_profile(name)
    if name == "default":
        return {}
    env = {ENV_VAR: "edge",
           "ATEN_CPU_CAPABILITY": "default",   # ATen's kernels without AVX2/AVX-512
           "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
           "ONEDNN_MAX_CPU_ISA": "SSE41", "DNNL_MAX_CPU_ISA": "SSE41"}
    if _x86():  # SSE4.2: 128-bit vectors like NEON; AArch64 hosts already are 128-bit
        env.update(NUMBA_CPU_NAME="x86-64-v2", NUMBA_CPU_FEATURES="")
    return env


#: every variable some profile sets (recorded in the machine fingerprint when present)
PROFILE_KEYS = (ENV_VAR, "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                "DNNL_MAX_CPU_ISA", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")


def check_profile(name: Any) -> str:
    """``name`` when it is a profile; BadInputError naming the allowed ones when not."""
    if name not in PROFILES:
        raise BadInputError(f"profile: got {name!r}; allowed: {', '.join(PROFILES)}")
    return name


def current_profile() -> str:
    """The profile this process runs in (``$PRUNEBENCH_PROFILE``, ``default`` when unset)."""
    name = os.environ.get(ENV_VAR) or "default"
    if name not in PROFILES:
        raise BadInputError(f"{ENV_VAR}: got {name!r}; allowed: {', '.join(PROFILES)}")
    return name


def profile_env(name: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with every profile variable replaced by ``name``'s."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in PROFILE_KEYS}
    env.update(profile_vars(name))
    return env


def in_profile(name: str) -> bool:
    """Whether this process's environment has exactly profile ``name``'s variables."""
    want = profile_vars(name)
    return all(os.environ.get(k) == want.get(k) for k in PROFILE_KEYS)


def run_in_profile(name: str, argv: list[str]) -> int | None:
    """Run ``python -m prunebench ARGV`` in profile ``name`` in a child process and return its
    exit status, or None (nothing run) when this process already runs in that profile. The
    child shares stdin/stdout/stderr. Call before numba compiles or torch computes anything."""
    if current_profile() == name and (name == "default" or in_profile(name)):
        return None  # (a default run keeps any NUMBA_CPU_NAME etc. its user set)
    if os.environ.get(_CHILD_VAR) == name:  # the child did not take the profile: never loop
        raise BadInputError(f"profile: cannot start in profile {name!r}; set its variables "
                            f"yourself: {profile_vars(name)}")
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(profile_env(name), **{_CHILD_VAR: name})
    return subprocess.run([sys.executable, "-m", "prunebench", *argv], env=env).returncode


_CHILD_VAR = "PRUNEBENCH_PROFILE_CHILD"
