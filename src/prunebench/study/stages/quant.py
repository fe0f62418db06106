"""The int8 dynamic-quantization control: accuracy, file bytes and output error."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ..jobs import Job
from ..rows import JobStatus, ResultRow
from .common import VerifyFailed

if TYPE_CHECKING:
    from ...zoo.datasets import Dataset


def quant_job(job: Job, dense: nn.Module, data: Dataset | None) -> tuple[nn.Module, ResultRow]:
    """Accuracy, file bytes and output error of the int8 dynamic-quantization control.

    Its outputs are compared with the dense fp32 model under the int8 tolerance, but a miss is
    recorded (``verify.ok`` False), not a failure: the control is a different model whose
    accuracy is the measurement (activations are quantized too, which an LSTM feels most);
    only non-finite outputs fail it."""
    from .. import controls

    from ...errors import VerificationError
    from ...runtime.verify import verify as _verify

    if data is None:  # the spec quantizes trained models only
        raise ValueError(f"model {job.model} has no test data to judge its int8 control by")
    t0 = time.perf_counter()
    q = controls.quantize_int8(dense)
    try:
        v = _verify(q, dense, data.x_test, data.y_test, values="int8", raise_on_fail=False)
    except VerificationError as e:  # e.g. an output shape mismatch
        raise VerifyFailed(str(e), {}) from None
    numbers = v.as_dict()
    extra: dict[str, Any] = {"method_label": "int8-dynamic", "verify": numbers,
             "accuracy_dense": v.accuracy_reference,
             "dense_state_bytes": controls.state_bytes(dense),
             "quantized_layers": controls.quantized_layers(q),
             "elapsed_s": time.perf_counter() - t0}
    if not np.isfinite(v.max_abs):
        raise VerifyFailed(v.reason, numbers)
    row = ResultRow.of(job, JobStatus.OK, kind="quant", method="dense", scope=None,
                       sparsity=0.0, format="dense", value_encoding="int8",
                       engine="torch-quant", batch=None, threads=None,
                       file_bytes=controls.state_bytes(q), accuracy=v.accuracy, extra=extra)
    return q, row
