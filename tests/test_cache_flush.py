"""The cold-cache flush is sized from this machine's last-level cache (twice it, within bounds),
and every benchmark script at least imports (a renamed constant once broke one silently)."""
import importlib.util
from pathlib import Path

import pytest

from prunebench.measure import bandwidth as bw

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _fake_cache(tmp_path: Path, entries: list[tuple[int, str]]) -> Path:
    root = tmp_path / "cache"
    for i, (level, size) in enumerate(entries):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "size").write_text(f"{size}\n")
    return root


@pytest.mark.parametrize("entries, llc, flush", [
    ([(1, "48K"), (2, "2048K"), (3, "491520K")], 480 << 20, 960 << 20),  # the Xeon VM: 2x its L3
    ([(1, "32K"), (2, "1024K"), (3, "32M")], 32 << 20, 96 << 20),        # at least 96 MiB
    ([(1, "64K"), (2, "4M"), (3, "1G")], 1 << 30, 1 << 30),              # at most 1 GiB
    ([(1, "64K"), (2, "8M")], 8 << 20, 96 << 20),                        # no L3: the L2 is last
])
def test_flush_is_twice_the_last_level_cache_within_bounds(tmp_path, monkeypatch, entries, llc, flush):
    root = _fake_cache(tmp_path, entries)
    real_listdir, real_open = bw.os.listdir, open

    def listdir(p):
        return real_listdir(root) if p == "/sys/devices/system/cpu/cpu0/cache" else real_listdir(p)

    def fake_open(p, *a, **k):
        p = str(p)
        if p.startswith("/sys/devices/system/cpu/cpu0/cache/"):
            p = str(root / p.removeprefix("/sys/devices/system/cpu/cpu0/cache/"))
        return real_open(p, *a, **k)

    monkeypatch.setattr(bw.os, "listdir", listdir)
    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(bw, "FLUSH_BYTES", None)
    monkeypatch.setattr(bw, "STREAM_BYTES", None)
    assert bw.last_level_cache_bytes() == llc
    assert bw.flush_bytes() == flush
    assert bw.stream_bytes() == max(256 << 20, flush)


def test_set_sizes_win(monkeypatch):
    monkeypatch.setattr(bw, "FLUSH_BYTES", 4 << 20)
    monkeypatch.setattr(bw, "STREAM_BYTES", 8 << 20)
    assert bw.flush_bytes() == 4 << 20 and bw.stream_bytes() == 8 << 20
    assert bw.CacheFlush(1).buf.nbytes == 4 << 20


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_benchmark_script_imports(script):
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCHMARKS / script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # the imports and definitions; main() runs only as a script
    assert callable(getattr(module, "main", None)), f"{script} has no main()"
