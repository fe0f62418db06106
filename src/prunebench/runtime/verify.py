"""Verification: does a re-encoded / compiled model still compute what the dense one does?"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..errors import BadInputError, VerificationError

# Largest error of the outputs, relative to the largest |reference output|, allowed per value
# encoding. fp32 formats only reorder sums (float32 rounding); fp16 keeps 11 significant bits;
# int8 with per-row scales keeps about 7.
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 5e-2, "int8": 1.5e-1}
LOSSLESS = ("fp32",)


@dataclass(frozen=True)
class Verification:
    values: str
    n: int
    max_abs: float
    rel_max: float
    tolerance: float
    top1_agreement: float
    accuracy_reference: float | None
    accuracy: float | None
    ok: bool
    reason: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d["accuracy_delta"] = (None if self.accuracy is None or self.accuracy_reference is None
                               else self.accuracy - self.accuracy_reference)
        return d


@torch.inference_mode()
def verify(run: Callable[[torch.Tensor], torch.Tensor], reference: torch.nn.Module,
           x: torch.Tensor, y: torch.Tensor | None = None, *, values: str = "fp32",
           batch_size: int = 256, raise_on_fail: bool = True) -> Verification:
    """Compare ``run(x)`` with ``reference(x)`` (dense fp32).

    Passes when the largest absolute output error is within ``TOLERANCE[values]`` times the
    largest |reference output| and, for lossless encodings, top-1 agreement is 100%.
    Lossy encodings report their accuracy change instead of requiring agreement.
    Raises :class:`VerificationError` with the numbers when it fails (unless
    ``raise_on_fail`` is False)."""
    if values not in TOLERANCE:
        raise BadInputError(f"values: got {values!r}; allowed: {', '.join(TOLERANCE)}")
    if len(x) == 0:
        raise BadInputError("verify: no inputs given")
    reference.eval()
    outs, refs = [], []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        outs.append(torch.as_tensor(run(xb)).float())
        refs.append(reference(xb).float())
    out, ref = torch.cat(outs), torch.cat(refs)
    if out.shape != ref.shape:
        raise VerificationError(f"output shape {tuple(out.shape)} differs from the dense "
                                f"model's {tuple(ref.shape)}")
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        v = Verification(values, len(x), float("inf"), float("inf"), TOLERANCE[values], 0.0,
                         None, None, False, f"{bad} non-finite outputs")
    else:
        max_abs = float((out - ref).abs().max())
        scale = float(ref.abs().max()) or 1.0
        rel = max_abs / scale
        agree = float((out.argmax(-1) == ref.argmax(-1)).float().mean()) if out.dim() > 1 else 1.0
        acc_ref = acc = None
        if y is not None and out.dim() > 1:
            acc_ref = float((ref.argmax(-1) == y).float().mean())
            acc = float((out.argmax(-1) == y).float().mean())
        reasons = []
        if rel > TOLERANCE[values]:
            reasons.append(f"max error {max_abs:.3g} is {rel:.3g} of the output scale, above the "
                           f"{values} tolerance {TOLERANCE[values]:g}")
        if values in LOSSLESS and agree < 1.0:
            reasons.append(f"top-1 agreement {agree:.2%} < 100% for a lossless encoding")
        v = Verification(values, len(x), max_abs, rel, TOLERANCE[values], agree, acc_ref, acc,
                         not reasons, "; ".join(reasons))
    if not v.ok and raise_on_fail:
        raise VerificationError(f"verification failed on {v.n} inputs: {v.reason}")
    return v
