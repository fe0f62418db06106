"""Shared base class, registry and validation helpers for every storage format.

A format object holds a few NumPy arrays plus a little JSON metadata and never loops
over nonzeros in Python. Each concrete format lives in its own module, declares itself
with class attributes and implements three hooks:

``_encode(W, Q, scales, values, index_dtype, **options)``
    build the object from the float32 matrix ``W`` and its value-encoded copy ``Q``;
``_decode()``
    return the dense matrix in the *storage* dtype (dequantisation is done here, in the base);
``_check()``
    validate the layout, raising :class:`FormatError` with a message that says what it found.

Conventions shared by all formats
---------------------------------
* A stored entry is an entry with ``W != 0``; ``-0.0`` counts as zero, so sparse layouts
  decode it as ``+0.0``. "Lossless" therefore means: every nonzero fp32 value round-trips
  bit-exactly and every zero decodes to a zero.
* Index arrays use the narrowest of uint8 / uint16 / int32 that holds the largest index the
  *dimension* allows (e.g. ``cols - 1`` for CSR column indices), not the largest one present,
  so the byte count depends only on shape and nnz.
* Pointer arrays are int32, or int64 when they must count 2**31 entries or more.
* With ``values="int8"`` there is one more array, ``scales`` float32 [rows], one per row of W
  (also for column-major layouts such as CSC); entry ``W[r, c] ~= data * scales[r]``.
* ``nbytes()`` counts exactly the arrays returned by ``arrays()``; shape and options live in
  ``meta()`` (a few JSON bytes in the container header) and are not counted.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

# the formats import both from here
from ..dtypes import INDEX_DTYPES, POINTER_DTYPES  # noqa: F401
from ..errors import BadInputError, FormatError
from ..registry import Registry
from . import values as _values

FORMATS: Registry[type["Format"]] = Registry("format")


# ---------------------------------------------------------------- argument validation


def check_matrix(W: Any, who: str) -> np.ndarray:
    """Return ``W`` as a C-contiguous 2-D float32 array or raise BadInputError."""
    arr = np.asarray(W)
    if arr.ndim != 2:
        raise BadInputError(f"{who}: W should be a 2-D matrix, got {arr.ndim}-D array of shape {arr.shape}")
    if arr.dtype != np.float32:
        raise BadInputError(f"{who}: W should have dtype float32, got {arr.dtype}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise BadInputError(f"{who}: W has shape {arr.shape}; need at least 1 row and 1 column")
    if not np.isfinite(arr).all():
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise BadInputError(f"{who}: W must be finite, got {arr[r, c]} at row {r}, column {c}")
    return np.ascontiguousarray(arr)


def check_int_option(who: str, arg: str, value: Any, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as an int in [lo, hi] or raise BadInputError naming the argument."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if ok and value >= lo and (hi is None or value <= hi):
        return int(value)
    allowed = f"an int >= {lo}" if hi is None else f"an int in [{lo}, {hi}]"
    raise BadInputError(f"{who}: {arg}={value!r} should be {allowed}")


def check_choice(who: str, arg: str, value: Any, allowed: tuple) -> Any:
    """Return ``value`` if it is one of ``allowed`` else raise BadInputError."""
    if isinstance(value, (str, int, np.integer)) and not isinstance(value, bool) and value in allowed:
        return value
    raise BadInputError(f"{who}: {arg}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")


def narrowest_index_dtype(limit: int) -> np.dtype:
    """Narrowest of uint8 / uint16 / int32 that holds every index in [0, limit]."""
    for name in INDEX_DTYPES:
        if limit <= np.iinfo(name).max:
            return np.dtype(name)
    raise BadInputError(f"index {limit} does not fit in int32")


def index_dtype_for(limit: int, index_dtype: Any, who: str, what: str) -> np.dtype:
    """Resolve the user's ``index_dtype`` (None = narrowest) for indices in [0, limit].

    ``what`` names the index in the error, e.g. ``"column index"``.
    """
    if index_dtype is None:
        return narrowest_index_dtype(limit)
    try:
        dt = np.dtype(index_dtype)
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.name not in INDEX_DTYPES:
        raise BadInputError(f"{who}: index_dtype={index_dtype!r} is not allowed; "
                            f"allowed: None, {', '.join(INDEX_DTYPES)}")
    if limit > np.iinfo(dt).max:
        wider = [n for n in INDEX_DTYPES if np.iinfo(n).max >= limit]
        raise BadInputError(
            f"{who}: index_dtype={dt.name!r} cannot hold {what} {limit}; use {' or '.join(wider)} or None")
    return dt


def pointer_dtype(count: int) -> np.dtype:
    """int32 for pointers into arrays shorter than 2**31 entries, else int64."""
    return np.dtype(np.int32) if count < 2**31 else np.dtype(np.int64)


def make_pointer(counts: np.ndarray) -> np.ndarray:
    """Prefix sum ``[0, c0, c0+c1, ...]`` in the pointer dtype."""
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr.astype(pointer_dtype(int(ptr[-1])))


# ---------------------------------------------------------------- structure checks


def expect_array(who: str, arrays: dict, name: str, dtypes: tuple[str, ...], shape: tuple) -> np.ndarray:
    """Return ``arrays[name]`` after checking dtype and shape (None in ``shape`` = any length)."""
    a = arrays[name]
    if a.dtype.name not in dtypes:
        raise FormatError(f"{who}: {name} has dtype {a.dtype}, expected {' or '.join(dtypes)}")
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise FormatError(f"{who}: {name} has shape {list(a.shape)}, expected {want}")
    return a


def check_pointer(who: str, ptr: np.ndarray, name: str, unit: str, n: int, total: int, total_what: str) -> None:
    """Check a prefix-sum pointer over ``n`` units (rows, ...): n+1 entries, starts at 0,
    non-decreasing, ends at ``total``."""
    if ptr.ndim != 1 or len(ptr) != n + 1:
        raise FormatError(f"{who}: {name} has {len(ptr)} entries, expected {unit}s+1 = {n + 1}")
    if ptr[0] != 0:
        raise FormatError(f"{who}: {name}[0] is {ptr[0]}, expected 0")
    bad = np.flatnonzero(np.diff(ptr.astype(np.int64)) < 0)
    if len(bad):
        raise FormatError(f"{who}: {name} not non-decreasing at {unit} {bad[0]}")
    if ptr[-1] != total:
        raise FormatError(f"{who}: {name}[-1] is {ptr[-1]}, expected {total_what} = {total}")


def segment_ids(ptr: np.ndarray) -> np.ndarray:
    """For a valid pointer, the segment (row) number of every entry."""
    counts: np.ndarray = np.diff(ptr.astype(np.int64))
    return np.repeat(np.arange(len(ptr) - 1), counts)


def check_indices(who: str, idx: np.ndarray, limit: int, what: str, limit_what: str,
                  seg: np.ndarray | None = None, seg_what: str = "") -> None:
    """Check ``0 <= idx < limit``; the message names the first bad entry and its segment.

    e.g. "csr: column index 70 out of range for 64 columns in row 3".
    """
    i = idx.astype(np.int64)
    bad = np.flatnonzero((i < 0) | (i >= limit))
    if len(bad):
        k = bad[0]
        where = f" in {seg_what} {seg[k]}" if seg is not None else f" at entry {k}"
        raise FormatError(f"{who}: {what} {idx[k]} out of range for {limit} {limit_what}{where}")


def check_sorted_segments(who: str, idx: np.ndarray, seg: np.ndarray, what: str, seg_what: str) -> None:
    """Check indices strictly increase inside each segment (sorted, no duplicates)."""
    i = idx.astype(np.int64)
    bad = np.flatnonzero((np.diff(i) <= 0) & (seg[1:] == seg[:-1]))
    if len(bad):
        k = bad[0] + 1
        raise FormatError(f"{who}: {what} {idx[k]} follows {idx[k - 1]} in {seg_what} {seg[k]}; "
                          f"expected strictly increasing")


def _check_shape_and_values(who: str, shape: Any, values: Any) -> None:
    if not (isinstance(shape, (list, tuple)) and len(shape) == 2
            and all(type(s) is int and s >= 1 for s in shape)):
        raise FormatError(f"{who}: meta shape {shape!r} should be two positive ints")
    if values not in _values.VALUE_ENCODINGS:
        raise FormatError(f"{who}: meta values {values!r} should be one of {', '.join(_values.VALUE_ENCODINGS)}")


# ---------------------------------------------------------------- the base class


class Format(ABC):
    """One encoded 2-D weight matrix.

    Subclasses set ``name``, ``lossless`` (layout keeps fp32 values exactly),
    ``array_names`` (layout arrays, without ``scales``), the byte classes
    ``value_arrays`` / ``index_arrays`` / ``pointer_arrays`` (any other array, e.g. scales,
    counts as metadata), ``meta_keys`` (format options stored in :meth:`meta`),
    ``option_defaults`` (options of :meth:`from_dense`) and ``has_index_dtype``.

    What the rest of the package asks about a format, so that it never compares names:

    * ``kernel_arrays`` / ``kernel_options``: the arrays (in order) and the ``meta`` options
      a kernel of :mod:`prunebench.kernels` takes (:meth:`kernel_args`); which kernel runs a
      format is the kernels' registry (``prunebench.kernels.KERNELS``), keyed by ``name``;
    * ``runtime_options``: the options ``compile()``, the planner and the model files pass
      on, with the defaults they use (may differ from ``option_defaults``: ell runs slices of
      32 rows there);
    * ``pattern`` / ``pattern_keys`` / ``pattern_only``: the pruning granularity whose shape
      the format's options take from a method (bsr: ``block``; nm: ``n``, ``m``), and whether
      the format holds only matrices of that pattern (``pattern_label`` says which, in
      messages); :meth:`misfit` says why a matrix does not fit;
    * ``option_choices``: options with a closed set of values (rcsr ``bits``);
      ``one_of_options``: options of which exactly one must be given, each with what it
      takes, and ``one_of_default`` the one a study uses when none is;
    * ``stores_entries``: False for a format that approximates W (lowrank): the stored values
      are not entries of W, and an accuracy read back from a lossless file does not apply;
    * ``min_batch``: the smallest batch its kernels are built for (cbcsr: 8); the planner's
      default candidates leave it out below that batch (given explicitly, it is timed);
    * its byte model (:func:`prunebench.formats.estimate_nbytes`): :meth:`expected_parts`,
      :meth:`estimate_options`, :meth:`max_count`, :meth:`expected_scale_bytes` and
      ``estimate_patterns`` (patterns besides ``"unstructured"`` it models exactly).
    """

    name: ClassVar[str]
    lossless: bool = True      # the class's layout; an instance's also needs fp32 values
    array_names: ClassVar[tuple[str, ...]]
    value_arrays: ClassVar[tuple[str, ...]] = ("data",)
    index_arrays: ClassVar[tuple[str, ...]] = ()
    pointer_arrays: ClassVar[tuple[str, ...]] = ()
    meta_keys: ClassVar[tuple[str, ...]] = ()
    option_defaults: ClassVar[dict[str, Any]] = {}
    has_index_dtype: ClassVar[bool] = False
    scale_names: ClassVar[tuple[str, ...]] = ("scales",)
    # False for formats whose stored values are not entries of W (lowrank quantises its factors)
    stores_entries: ClassVar[bool] = True
    min_batch: ClassVar[int] = 1
    kernel_arrays: ClassVar[tuple[str, ...]] = ()
    kernel_options: ClassVar[tuple[str, ...]] = ()
    runtime_options: ClassVar[dict[str, Any]] = {}
    pattern: ClassVar[str | None] = None
    pattern_keys: ClassVar[tuple[str, ...]] = ()
    pattern_only: ClassVar[bool] = False
    pattern_label: ClassVar[str] = ""
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    one_of_options: ClassVar[dict[str, str]] = {}
    one_of_default: ClassVar[dict[str, Any]] = {}
    estimate_patterns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, shape: tuple[int, int], values: str, arrays: dict[str, np.ndarray], **meta: Any):
        """Store without validation; use :meth:`from_dense` or :meth:`from_arrays` to build one."""
        rows, cols = shape
        self.shape: tuple[int, int] = (rows, cols)
        self.values = values
        # instance attribute: a layout is only lossless with fp32 values
        self.lossless = type(self).lossless and values == "fp32"
        self._names = tuple(arrays)
        for k, a in arrays.items():
            setattr(self, k, a)
        for k in self.meta_keys:
            setattr(self, k, meta[k])

    # -- construction ------------------------------------------------------------

    @classmethod
    def from_dense(cls, W: np.ndarray, *, values: str = "fp32", index_dtype: Any = None, **opts: Any) -> "Format":
        """Encode a 2-D float32 matrix.

        Parameters
        ----------
        W : ndarray, float32, 2-D, finite
        values : {"fp32", "fp16", "int8"}
            Value encoding; int8 uses one symmetric scale per row of ``W``.
        index_dtype : None or {"uint8", "uint16", "int32"}
            None picks the narrowest that fits; a too-narrow choice raises BadInputError.
        **opts
            Format options, see the subclass (e.g. ``block=(4, 4)`` for BSR).
        """
        who = cls.name
        W = check_matrix(W, who)
        values = _values.check_values(values, who)
        if index_dtype is not None and not cls.has_index_dtype:
            raise BadInputError(f"{who}: index_dtype={index_dtype!r} is not used by format {who!r}; pass None")
        unknown = sorted(set(opts) - set(cls.option_defaults))
        if unknown:
            allowed = ", ".join(cls.option_defaults) or "none"
            raise BadInputError(f"{who}: unknown option(s) {', '.join(unknown)}; allowed: {allowed}")
        opts = cls._check_options(W.shape, **{**cls.option_defaults, **opts})
        Q, scales = _values.encode_values(W, values, who) if cls.stores_entries else (None, None)
        obj = cls._encode(W, Q, scales, values, index_dtype, **opts)
        obj.check()
        return obj

    @classmethod
    def _check_options(cls, shape: tuple[int, int], **opts: Any) -> dict[str, Any]:
        """Validate and normalise ``from_dense`` options (raise BadInputError)."""
        return opts

    @classmethod
    @abstractmethod
    def _encode(cls, W: np.ndarray, Q: np.ndarray | None, scales: np.ndarray | None, values: str,
                index_dtype: Any, **opts: Any) -> "Format":
        """Build the object; ``Q`` is ``W`` in the storage dtype, ``scales`` the int8 row scales."""

    @classmethod
    def _new(cls, shape, values, scales, arrays: dict, **meta) -> "Format":
        if scales is not None:
            arrays = {**arrays, "scales": scales}
        return cls(shape, values, arrays, **meta)

    # -- (de)serialisation ---------------------------------------------------------

    @classmethod
    def misfit(cls, W: np.ndarray, **opts: Any) -> str | None:
        """Why ``W`` does not fit this format with ``opts`` (missing ones take their
        ``option_defaults``), or None when it does; only ``pattern_only`` formats refuse."""
        return None

    # -- the byte model (formats/accounting.py sums it up) ----------------------------------

    @classmethod
    def estimate_options(cls, shape: tuple[int, int], given: dict[str, Any]) -> dict[str, Any]:
        """The byte model's options from ``given`` (every option ``estimate_nbytes`` takes),
        checked; raise BadInputError."""
        return {}

    @classmethod
    def expected_parts(cls, shape: tuple[int, int], count: int,
                       o: dict[str, Any]) -> tuple[float, float, float]:
        """Expected (values, indices, pointers) bytes with ``count`` nonzeros (blocks or rows
        under those patterns); ``o`` as in :mod:`prunebench.formats.expected`."""
        raise BadInputError(f"estimate_nbytes: no cost model for format {cls.name!r}")

    @classmethod
    def max_count(cls, shape: tuple[int, int], o: dict[str, Any], units: int) -> int:
        """Most nonzeros (of ``units``) the format can hold."""
        return units

    @classmethod
    def expected_scale_bytes(cls, shape: tuple[int, int], o: dict[str, Any]) -> int:
        """Bytes of the int8 scales: one float32 per row of W."""
        return 4 * shape[0]

    def kernel_args(self) -> tuple[tuple[np.ndarray, ...], dict[str, int]]:
        """(arrays, options) a kernel of :mod:`prunebench.kernels` takes for this object:
        ``kernel_arrays`` as C-contiguous arrays, ``kernel_options`` as ints."""
        arrays = tuple(np.ascontiguousarray(getattr(self, k)) for k in self.kernel_arrays)
        return arrays, {k: int(getattr(self, k)) for k in self.kernel_options}

    def arrays(self) -> dict[str, np.ndarray]:
        """All arrays that, with :meth:`meta`, fully describe the object."""
        return {k: getattr(self, k) for k in self._names}

    def meta(self) -> dict[str, Any]:
        """JSON-serialisable shape, value encoding and format options."""
        m = {"shape": [int(s) for s in self.shape], "values": self.values}
        for k in self.meta_keys:
            v = getattr(self, k)
            m[k] = list(v) if isinstance(v, tuple) else v
        return m

    @classmethod
    def expected_arrays(cls, values: str) -> tuple[str, ...]:
        """Array names an object with this value encoding must have."""
        return cls.array_names + _values.scale_arrays(cls, values)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> "Format":
        """Rebuild from :meth:`arrays` / :meth:`meta` output and validate with :meth:`check`.

        Safe for untrusted input: any inconsistency raises FormatError.
        """
        who = cls.name
        if not isinstance(meta, dict):
            raise FormatError(f"{who}: meta should be a dict, got {type(meta).__name__}")
        missing = [k for k in ("shape", "values", *cls.meta_keys) if k not in meta]
        extra = sorted(set(meta) - {"shape", "values", *cls.meta_keys})
        if missing or extra:
            raise FormatError(f"{who}: meta keys {sorted(meta)} should be {['shape', 'values', *cls.meta_keys]}")
        shape, values = meta["shape"], meta["values"]
        _check_shape_and_values(who, shape, values)
        want = cls.expected_arrays(values)
        if set(arrays) != set(want):
            raise FormatError(f"{who}: arrays {sorted(arrays)} should be {sorted(want)} for values={values!r}")
        arrs = {k: np.ascontiguousarray(arrays[k]) for k in want}
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.items() if k in cls.meta_keys}
        obj = cls(tuple(shape), values, arrs, **opts)
        obj.check()
        return obj

    # -- validation ------------------------------------------------------------------

    def check(self) -> None:
        """Validate dtypes, shapes, pointers and index ranges; raise FormatError if broken.

        After ``check()`` passes, a kernel that follows the documented layout never reads out
        of bounds.
        """
        who = self.name
        _check_shape_and_values(who, self.shape, self.values)
        arrays = self.arrays()
        if set(arrays) != set(self.expected_arrays(self.values)):
            raise FormatError(f"{who}: arrays {sorted(arrays)} should be {sorted(self.expected_arrays(self.values))}")
        for k, a in arrays.items():
            if not isinstance(a, np.ndarray):
                raise FormatError(f"{who}: {k} should be a numpy array, got {type(a).__name__}")
        for k in self.value_arrays:
            a = arrays[k]
            if a.dtype != _values.VALUE_DTYPES[self.values]:
                raise FormatError(f"{who}: {k} has dtype {a.dtype}, expected {_values.VALUE_DTYPES[self.values]} "
                                  f"for values={self.values!r}")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise FormatError(f"{who}: {k} holds non-finite values")
        _values.check_scales(self, arrays)
        self._check()

    @abstractmethod
    def _check(self) -> None:
        """Format-specific structure checks (value dtypes and scales are already checked)."""

    def _scale_lengths(self) -> dict[str, int]:
        """Length of each int8 scale array (one scale per row of W by default)."""
        return {"scales": self.shape[0]}

    # -- decoding and accounting ------------------------------------------------------

    def to_dense(self) -> np.ndarray:
        """Decode to a float32 matrix of ``shape`` (dequantising int8/fp16 values)."""
        return _values.decode_values(self._decode(), getattr(self, "scales", None))

    @abstractmethod
    def _decode(self) -> np.ndarray:
        """Dense matrix in the storage dtype (float32, float16 or int8)."""

    def nbytes(self) -> dict[str, int]:
        """Bytes of the stored arrays by role: values, indices, pointers, metadata, total."""
        out = {"values": 0, "indices": 0, "pointers": 0, "metadata": 0}
        for k, a in self.arrays().items():
            role = ("values" if k in self.value_arrays else "indices" if k in self.index_arrays
                    else "pointers" if k in self.pointer_arrays else "metadata")
            out[role] += int(a.nbytes)
        out["total"] = sum(out.values())
        return out

    def error_vs(self, W: np.ndarray) -> dict[str, float]:
        """Encoding error against the original matrix, see :func:`encoding_error`."""
        return encoding_error(W, self)

    def __repr__(self) -> str:
        opts = "".join(f" {k}={getattr(self, k)}" for k in self.meta_keys)
        return (f"<{type(self).__name__} {self.shape[0]}x{self.shape[1]} values={self.values}{opts} "
                f"{self.nbytes()['total']} bytes>")


def encoding_error(W: np.ndarray, fmt: Format) -> dict[str, float]:
    """Max absolute and relative Frobenius error of ``fmt.to_dense()`` against ``W``.

    ``rel_fro`` is ``||W - D||_F / ||W||_F``: 0 when the error is zero, inf when W is zero but
    the decoded matrix is not.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.shape != fmt.shape:
        raise BadInputError(f"W has shape {W.shape}, but the {fmt.name} object has shape {fmt.shape}")
    err = fmt.to_dense().astype(np.float64) - W
    max_abs = float(np.abs(err).max())
    num, den = float(np.linalg.norm(err)), float(np.linalg.norm(W))
    rel = 0.0 if num == 0 else (num / den if den > 0 else float("inf"))
    return {"max_abs": max_abs, "rel_fro": rel}
