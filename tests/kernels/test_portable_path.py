"""The kernels' portable code path (issue 17, item 3): the kernel correctness tests run a second
time with numba compiling for a generic x86-64 CPU (``NUMBA_CPU_NAME=generic``: no AVX, no
AVX2, no AVX-512, no F16C), where the masked-load intrinsics of ``kernels/_simd.py`` lower to a
slower but correct sequence and float16 values are converted with integer operations. The
second run is two child processes (numba fixes its target when it is imported), each with a
fresh numba cache, so every kernel is compiled for that target: all of the kernel tests, most of
the time compilation, which numba does on one core; the two children (the products, and the
rest, whose ``_left`` kernels are other functions) compile side by side.

This test found the float16 bug: LLVM lowers ``fpext half`` to a call of ``__extendhfsf2`` on
targets without F16C, a symbol numba's JIT cannot resolve, and the child aborted.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERIC = os.environ.get("NUMBA_CPU_NAME") == "generic"
X86 = platform.machine().lower() in ("x86_64", "amd64")
# every kernel test, in two halves of about the same compile time (one child each)
KERNEL_TESTS = [["tests/kernels/test_products.py"],
                ["tests/kernels/test_left.py", "tests/kernels/test_checks.py", "tests/kernels/test_panel.py",
                 "tests/kernels/test_half_conversion.py", "tests/kernels/test_portable_path.py",
                 "tests/kernels/test_transpose.py", "tests/kernels/test_gather_axpy_at.py"]]


@pytest.mark.slow
@pytest.mark.skipif(GENERIC, reason="this is the generic run")
@pytest.mark.skipif(not X86, reason="the generic target named here is x86-64's")
def test_kernel_tests_pass_compiled_for_generic_x86_64(tmp_path):
    children = []
    for i, tests in enumerate(KERNEL_TESTS):
        env = dict(os.environ, NUMBA_CPU_NAME="generic",
                   NUMBA_CACHE_DIR=str(tmp_path / f"numba{i}"),
                   PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
        env.pop("NUMBA_CPU_FEATURES", None)
        children.append(subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        done = [p.communicate(timeout=900) for p in children]
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (stdout, stderr) in zip(children, done):
        tail = stdout[-4000:] + stderr[-2000:]
        assert p.returncode == 0, tail
        # the child really ran its tests (the second one the generic-only check below)
        assert "passed" in stdout and " failed" not in stdout, tail


@pytest.mark.skipif(not GENERIC, reason="runs inside the generic run only")
def test_generic_run_emits_no_avx_instructions():
    import numba

    from .kernel_builders import compiled_asm
    from prunebench.kernels import spmv_csr

    from prunebench.kernels._simd import half_is_native

    assert numba.config.CPU_NAME == "generic"
    assert not half_is_native()  # float16 goes through the integer conversion here
    indptr = np.array([0, 2, 3], np.int64)
    indices = np.array([0, 3, 1], np.uint8)
    data = np.array([1.0, 2.0, 3.0], np.float32)
    x = np.arange(4, dtype=np.float32)
    y = np.zeros(2, np.float32)
    empty = np.zeros(0, np.float32)
    spmv_csr(indptr, indices, data, empty, empty, x, y, 1)
    np.testing.assert_allclose(y, [0 * 1 + 3 * 2, 1 * 3])
    asm = compiled_asm(spmv_csr)
    assert "%ymm" not in asm and "%zmm" not in asm and "vfmadd" not in asm


@pytest.mark.slow
@pytest.mark.skipif(GENERIC, reason="the native run only")
def test_native_run_fuses_multiply_add():
    """The intrinsics ask for ``llvm.fmuladd`` (not ``llvm.fma``, which a target without FMA
    turns into a libm call per lane); where the CPU has FMA it must still fuse."""
    from numba.core.codegen import get_host_cpu_features

    from .kernel_builders import assert_product, compiled_asm, ell_arrays, random_matrix
    from prunebench.kernels import ell_matvec, spmv_ell

    if "+fma" not in get_host_cpu_features().split(","):
        pytest.skip("this CPU has no FMA")
    W = random_matrix(40, 30, 0.5)
    arrays = ell_arrays(W != 0, W, 8, np.uint16)
    x = np.random.default_rng(0).standard_normal(30).astype(np.float32)
    assert_product(ell_matvec(*arrays, x, shape=W.shape, slice_height=8), W, x)
    asm = compiled_asm(spmv_ell)
    assert "vfmadd" in asm and "fmaf" not in asm
