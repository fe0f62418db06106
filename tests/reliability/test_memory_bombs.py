"""A small model file cannot make the loader allocate more than its zoo architecture's state
(issue 18, item 2). The bomb: a LeNet-300-100 file (the issue's was 17 KB) whose manifest sets
``layers.1.in_features`` to N and stores that layer as an empty COO matrix of shape
[100, N]: every check passed, and the loader densified 400*N bytes (N = 5e6: 6.4 GB peak RSS
in ``inspect``; N = 1e9: a raw MemoryError)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from .peak_rss import run_with_peak

from prunebench.errors import FormatError
from prunebench.formats import FORMATS
from prunebench.formats.container import load_container, save_container


def _bomb(path, n: int):
    from prunebench import zoo
    from prunebench.runtime.modelfile import save_model

    save_model(path, zoo.get_spec("digits-lenet300").build(), zoo_name="digits-lenet300", format="coo",
               keep_smaller=False)
    layers, extra, manifest = load_container(path)
    empty = {"row": np.zeros(0, np.uint8), "col": np.zeros(0, np.int32),
             "data": np.zeros(0, np.float32)}
    layers["layers.1.weight"] = FORMATS.get("coo").from_arrays(
        empty, {"shape": [100, n], "values": "fp32"})
    manifest["modules"] = {"layers.1": {"in_features": n}}
    save_container(path, layers, extra, manifest)
    assert os.path.getsize(path) < 200_000  # random weights: other layers are full
    return path


@pytest.mark.parametrize("n", [10**9, 5 * 10**5])
def test_load_refuses_a_manifest_larger_than_the_architecture(tmp_path, n):
    import prunebench as pb

    path = _bomb(tmp_path / "bomb.pbz", n)
    with pytest.raises(FormatError, match=r"more than the [\d,]+ of zoo model digits-lenet300"):
        pb.load(path)


@pytest.mark.slow
def test_inspect_peak_rss_stays_bounded_on_a_bomb(tmp_path):
    # N = 2e6: 800 MB decoded (several GB peak before the fix), refused now before decoding
    path = _bomb(tmp_path / "bomb.pbz", 2 * 10**6)
    base, rc, _, _, _ = run_with_peak(["prunebench", "models"], 120)
    assert rc == 0
    peak, rc, _, err, _ = run_with_peak(["prunebench", "inspect", str(path)], 120)
    assert peak - base <= 300 * 2**20, f"{(peak - base) / 2**20:.0f} MiB above the baseline"
    assert rc == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "of zoo model digits-lenet300" in lines[0], err[-2000:]
