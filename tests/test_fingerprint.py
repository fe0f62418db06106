import os
import platform

from prunebench.measure import fingerprint


def test_fingerprint_describes_this_machine():
    fp = fingerprint()
    assert fp["cores"] == os.cpu_count()
    assert fp["arch"] == platform.machine()
    assert fp["python"] == platform.python_version()
    import numpy
    import torch

    assert fp["libraries"]["torch"] == torch.__version__
    assert fp["libraries"]["numpy"] == numpy.__version__
    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    assert ("avx2" in fp["simd"]) == ("avx2" in flags)
    assert ("avx512f" in fp["simd"]) == ("avx512f" in flags)
    if os.path.exists("/proc/meminfo"):
        kib = int(open("/proc/meminfo").readline().split()[1])
        assert fp["memory_bytes"] == kib * 1024
    assert len(fp["id"]) == 16 and fp["id"] == fingerprint()["id"]
    assert fp["git_commit"]
