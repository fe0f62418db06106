"""The value encodings and the index dtypes: one home for the names the formats, the kernels,
the runtime and the command line share (the formats' :mod:`~prunebench.formats.values` says
what each encoding does to a weight)."""
from __future__ import annotations

import numpy as np

#: how stored weights are encoded: float32, float16, int8 with a float32 scale per row
VALUE_ENCODINGS = ("fp32", "fp16", "int8")
#: the numpy dtype of the stored values of each encoding
VALUE_DTYPES: dict[str, np.dtype] = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16),
                "int8": np.dtype(np.int8)}
#: the largest finite float16: larger weights are refused rather than stored as inf
FP16_MAX = float(np.finfo(np.float16).max)

#: dtypes a format stores its indices in, narrowest first (it picks the narrowest that fits)
INDEX_DTYPES = ("uint8", "uint16", "int32")
#: dtypes of row / slice pointers (int64 only past 2**31 entries)
POINTER_DTYPES = ("int32", "int64")
#: index dtypes a kernel takes: a format's, and int64 (what SciPy and PyTorch hand over),
#: with every index below 2**31
KERNEL_INDEX_DTYPES = INDEX_DTYPES + ("int64",)
