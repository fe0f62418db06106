"""Keep numba's on-disk cache of the kernels consistent with the shared helper modules.

numba keys a cached function on its own source file only. A kernel in ``csr.py`` inlines the
intrinsics of ``_simd.py`` and the helpers of ``_jit.py``, so after an edit there it would keep
loading stale machine code. :func:`drop_stale_cache` stores a hash of those helper sources next to
the cache and deletes this package's cache files when the hash changes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: modules whose code is compiled into kernels defined in other files
HELPERS = ("_jit.py", "_left.py", "_simd.py", "_transpose.py")


def helpers_digest() -> str:
    h = hashlib.sha256()
    for name in HELPERS:
        h.update((HERE / name).read_bytes())
    return h.hexdigest()


def sources_digest() -> str:
    """A digest of every kernel and runtime source file: what a timing of a compiled layer
    depends on besides the weights (the planner keys its cached timings on it, so timings of
    older kernels are measured again)."""
    h = hashlib.sha256()
    for folder in (HERE, HERE.parent / "runtime"):
        for f in sorted(folder.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def drop_stale_cache(cache_dir: Path | None = None) -> bool:
    """Delete the package's ``*.nbi``/``*.nbc`` files if the helpers changed since they were
    written; return whether it did. Only numba's default cache location (``__pycache__`` beside
    the sources) is handled; a read-only tree is left alone."""
    cache_dir = cache_dir or HERE / "__pycache__"
    stamp = cache_dir / "kernel-helpers.sha256"
    digest = helpers_digest()
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        cache_dir.mkdir(exist_ok=True)
        for f in list(cache_dir.glob("*.nbi")) + list(cache_dir.glob("*.nbc")):
            f.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:
        return False
    return True
