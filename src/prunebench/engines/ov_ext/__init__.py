"""The C++ OpenVINO extension that carries prunebench's sparse product (``SparseMatMul``).

:func:`library` returns the path of the built shared library, building it with the system C++
compiler against the headers and libraries of the installed ``openvino`` wheel the first time
(``make setup`` builds it too: ``python -m prunebench.engines.ov_ext``). The build is cached
under ``$PRUNEBENCH_CACHE/ov_ext``, keyed by the source, the OpenVINO version and the compiler
flags, so an upgrade or an edit rebuilds it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from ...errors import PrunebenchError

SOURCE = Path(__file__).with_name("sparse_matmul.cpp")
#: ``-march=native``: the kernels are compiled for the machine that runs them (AVX-512 here)
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC",
         "-DOV_THREAD=OV_THREAD_TBB", "-Wno-attributes")


class ExtensionBuildError(PrunebenchError):
    """The extension could not be built (no compiler, no openvino, a compile error)."""


def _openvino_dirs() -> tuple[Path, Path, str]:
    try:
        import openvino
    except ImportError:
        raise ExtensionBuildError("engine openvino needs the openvino package: "
                                  "pip install -c constraints.txt openvino") from None
    root = Path(openvino.__file__).parent
    return root / "include", root / "libs", openvino.__version__


def _cache_dir() -> Path:
    base = os.environ.get("PRUNEBENCH_CACHE") or str(Path.home() / ".cache" / "prunebench")
    return Path(base) / "ov_ext"


def library() -> Path:
    """Path of the built extension; builds it when missing or stale."""
    include, libs, version = _openvino_dirs()
    key = hashlib.sha256(SOURCE.read_bytes() + version.encode() + " ".join(FLAGS).encode())
    out = _cache_dir() / f"libprunebench_ov_{key.hexdigest()[:16]}.so"
    if out.exists():
        return out
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise ExtensionBuildError("engine openvino needs a C++ compiler to build its sparse "
                                  "operation: install g++ (apt-get install g++)")
    ov_lib = sorted(libs.glob("libopenvino.so*"))
    tbb_lib = sorted(libs.glob("libtbb.so*"))
    if not ov_lib or not tbb_lib or not (include / "openvino" / "op" / "op.hpp").exists():
        raise ExtensionBuildError(f"the openvino wheel at {libs.parent} lacks its C++ headers or "
                                  "libraries; reinstall openvino from PyPI")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cxx, *FLAGS, f"-I{include}", str(SOURCE), "-o", str(tmp), str(ov_lib[0]),
           str(tbb_lib[0]), f"-Wl,-rpath,{libs}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise ExtensionBuildError(f"engine openvino needs a C++ compiler to build its sparse "
                                  f"operation; {cxx}: {e.strerror}. Install g++ (apt-get install "
                                  "g++) or set CXX") from None
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr[-300:])
        raise ExtensionBuildError(f"building the openvino extension failed ({cxx}): {first.strip()}")
    os.replace(tmp, out)
    return out

