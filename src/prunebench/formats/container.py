"""One-file model container: encoded layers plus extra tensors in a safetensors file.

File layout
-----------
A plain safetensors file (readable by any safetensors reader, never pickle):

* tensor ``"{layer}::{array}"`` for every array of every layer (``Format.arrays()``);
* tensor ``"extra::{name}"`` for every extra array (biases, norms, embeddings ...);
* metadata key ``"prunebench"`` holding the JSON
  ``{"version": 1, "layers": {layer: {"format": name, "meta": Format.meta(),
  "arrays": [array names]}}, "manifest": {...}}``.

Loading validates everything (header, manifest, array lists, every layer's ``check()``) and
names the layer in every error, so an untrusted file cannot crash a kernel later.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from ..errors import BadInputError, FormatError
from .base import FORMATS, Format

KEY = "prunebench"
VERSION = 1
SEP = "::"
EXTRA = "extra"


def save_container(path: str | os.PathLike, layers: dict[str, Format], extra: dict[str, np.ndarray] | None = None,
                   manifest: dict[str, Any] | None = None) -> None:
    """Write ``layers``, ``extra`` arrays and a JSON ``manifest`` to one safetensors file.

    The file appears atomically (written to a temporary file in the same folder, then
    renamed), so an error never leaves a half-written file at ``path``.
    """
    path = Path(path)
    extra = {} if extra is None else extra
    manifest = {} if manifest is None else manifest
    if not isinstance(layers, dict) or not isinstance(extra, dict) or not isinstance(manifest, dict):
        raise BadInputError("save_container: layers, extra and manifest should be dicts")
    tensors: dict[str, np.ndarray] = {}
    header: dict[str, Any] = {"version": VERSION, "layers": {}, "manifest": manifest}
    for name, fmt in layers.items():
        if not isinstance(name, str) or not name or SEP in name or name == EXTRA:
            raise BadInputError(f"save_container: layer name {name!r} should be a non-empty string "
                                f"without {SEP!r} and not {EXTRA!r}")
        if not isinstance(fmt, Format):
            raise BadInputError(f"save_container: layer {name!r} should be a Format, got {type(fmt).__name__}")
        fmt.check()
        arrays = fmt.arrays()
        header["layers"][name] = {"format": fmt.name, "meta": fmt.meta(), "arrays": list(arrays)}
        tensors.update({f"{name}{SEP}{k}": np.ascontiguousarray(a) for k, a in arrays.items()})
    for name, a in extra.items():
        if not isinstance(name, str) or not name or not isinstance(a, np.ndarray):
            raise BadInputError(f"save_container: extra {name!r} should map a non-empty name to a numpy array")
        tensors[f"{EXTRA}{SEP}{name}"] = np.ascontiguousarray(a)
    try:
        text = json.dumps(header)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"save_container: manifest is not JSON-serialisable: {e}") from None
    if not path.parent.is_dir():
        raise BadInputError(f"save_container: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            save_file(tensors, tmp, metadata={KEY: text})
        except (OSError, MemoryError):  # a full disk is the machine's state, not bad input
            raise
        except Exception as e:   # safetensors raises its own types for unsupported dtypes
            os_error = re.search(r"\(os error (\d+)\)", str(e))
            if os_error:  # its I/O errors too (disk full, quota): an OSError, not bad input
                code = int(os_error.group(1))
                raise OSError(code, os.strerror(code), str(path)) from None
            raise BadInputError(f"save_container: cannot write {path}: {e}") from None
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# nesting of the JSON header: a layer's meta is 2-3 levels deep, a planner record 5; a deeper
# header is crafted (tens of thousands of levels raise RecursionError in json or later)
MAX_DEPTH = 32


def _depth(obj: Any) -> int:
    """How deeply lists and dicts nest in ``obj`` (iteratively: no recursion limit)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                break
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return deepest


def _header(path: Path, f: Any) -> dict[str, Any]:
    meta = f.metadata() or {}
    if KEY not in meta:
        raise FormatError(f"file {path} is not a prunebench model file: no {KEY!r} entry in its metadata")
    try:
        header = json.loads(meta[KEY])
    except ValueError as e:
        raise FormatError(f"file {path}: the prunebench header is not valid JSON: {e}") from None
    except RecursionError:
        header = [[]] * (MAX_DEPTH + 1)  # deeper than allowed, as far as we know
    if _depth(header) > MAX_DEPTH:
        raise FormatError(f"file {path}: the prunebench header nests deeper than {MAX_DEPTH} "
                          "levels")
    if not isinstance(header, dict) or header.get("version") != VERSION:
        got = header.get("version") if isinstance(header, dict) else header
        raise FormatError(f"file {path}: prunebench header version {got!r}, expected {VERSION}")
    if not isinstance(header.get("layers"), dict) or not isinstance(header.get("manifest"), dict):
        raise FormatError(f"file {path}: prunebench header needs a 'layers' dict and a 'manifest' dict")
    return header


def _looks_pickled(path: Path) -> bool:
    """A torch.save zip, or a pickle of any protocol: 2+ open with PROTO (0x80, 2-5), 0 and 1
    with an opcode such as MARK '(' or GLOBAL 'c', and every pickle ends with STOP '.'. A
    safetensors file (even truncated) whose 8-byte header length starts with 0x80 has its
    JSON header's '{' at byte 8: not a pickle."""
    with open(path, "rb") as f:
        head = f.read(9)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(size - 1, 0))
        tail = f.read(1)
    if head[:2] == b"PK":
        return True
    if head[8:9] == b"{":
        return False
    if head[:1] == b"\x80":
        return head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    return len(head) > 1 and head[:1] in b"(cdl]}IJKNSVX" and tail == b"."


def load_container(path: str | os.PathLike) -> tuple[dict[str, Format], dict[str, np.ndarray], dict[str, Any]]:
    """Read and validate a file written by :func:`save_container`.

    Returns ``(layers, extra, manifest)``. Never unpickles anything. Raises BadInputError if
    the file does not exist and FormatError (naming the layer) for anything malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"model file {path} " + ("is not a file" if path.exists() else "does not exist"))
    try:
        handle = safe_open(str(path), framework="numpy")
    except Exception as e:     # SafetensorError for a bad header, truncated data, ...
        hint = ("; it looks like a pickle / torch.save file, which prunebench never loads"
                if _looks_pickled(path) else "")
        raise FormatError(f"file {path} is not a prunebench model file: {e}{hint}") from None
    with handle as f:
        header = _header(path, f)
        by_layer: dict[str, set[str]] = {}
        for key in f.keys():
            layer, sep, arr = key.partition(SEP)
            if not sep:
                raise FormatError(f"file {path}: tensor {key!r} is not named 'layer{SEP}array'")
            by_layer.setdefault(layer, set()).add(arr)
        stray = sorted(set(by_layer) - set(header["layers"]) - {EXTRA})
        if stray:
            raise FormatError(f"file {path}: tensors of layer(s) {', '.join(map(repr, stray))} "
                              f"are not listed in the header")
        layers = {name: _load_layer(path, f, name, entry, by_layer.get(name, set()))
                  for name, entry in header["layers"].items()}
        extra = {name: f.get_tensor(f"{EXTRA}{SEP}{name}") for name in sorted(by_layer.get(EXTRA, ()))}
    return layers, extra, header["manifest"]


def _load_layer(path: Path, f: Any, name: str, entry: Any, present: set[str]) -> Format:
    where = f"file {path}, layer {name!r}"
    if name == EXTRA or not isinstance(entry, dict) or set(entry) != {"format", "meta", "arrays"}:
        raise FormatError(f"{where}: header entry should have keys format, meta, arrays")
    if not isinstance(entry["format"], str) or entry["format"] not in FORMATS:
        raise FormatError(f"{where}: unknown format {entry['format']!r}; valid: {', '.join(sorted(FORMATS))}")
    listed = entry["arrays"]
    names_ok = isinstance(listed, list) and all(isinstance(a, str) for a in listed)
    if not names_ok or len(set(listed)) != len(listed) or set(listed) != present:
        raise FormatError(f"{where}: header lists arrays {listed!r} but the file holds {sorted(present)}")
    arrays = {a: f.get_tensor(f"{name}{SEP}{a}") for a in listed}
    try:
        return FORMATS.get(entry["format"]).from_arrays(arrays, entry["meta"])
    except FormatError as e:
        raise FormatError(f"{where}: {e}") from None
    except (ValueError, TypeError, IndexError, OverflowError) as e:
        raise FormatError(f"{where}: malformed arrays or meta: {e}") from None


def inspect_container(path: str | os.PathLike) -> dict[str, Any]:
    """Validate a model file and report its layers' formats and byte breakdowns.

    Returns a dict with ``file_bytes``, ``header_bytes`` (8-byte length + JSON header),
    ``container_overhead`` (file bytes not in any tensor), ``layers`` (per layer: format,
    shape, values, lossless, meta, nbytes, dense_fp32_bytes), totals ``nbytes`` and
    ``dense_fp32_bytes`` over layers, ``extra_bytes`` and the ``manifest``.
    """
    layers, extra, manifest = load_container(path)
    file_bytes = os.path.getsize(path)
    with open(path, "rb") as fh:
        header_bytes = 8 + int.from_bytes(fh.read(8), "little")
    info: dict[str, dict[str, Any]] = {name: {"format": f.name, "shape": list(f.shape), "values": f.values, "lossless": f.lossless,
                   "meta": f.meta(), "nbytes": f.nbytes(), "dense_fp32_bytes": 4 * f.shape[0] * f.shape[1]}
            for name, f in layers.items()}
    nbytes = sum(v["nbytes"]["total"] for v in info.values())
    extra_bytes = sum(int(a.nbytes) for a in extra.values())
    return {"file": str(path), "file_bytes": file_bytes, "header_bytes": header_bytes,
            "container_overhead": file_bytes - nbytes - extra_bytes, "layers": info, "nbytes": nbytes,
            "dense_fp32_bytes": sum(v["dense_fp32_bytes"] for v in info.values()),
            "extra_bytes": extra_bytes, "manifest": manifest}
