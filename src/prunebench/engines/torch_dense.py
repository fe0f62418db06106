"""``torch-dense``: the pruned model as is (zeros stored densely), run by PyTorch."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import BadInputError
from .base import ENGINES, Compiled, Engine


class TorchDense(Engine):
    name = "torch-dense"
    formats = ("dense",)
    values = ("fp32",)
    rnn = "PyTorch's own GRU/LSTM (dense)"

    def compile(self, model: nn.Module, format: Any = "dense", *, values: str = "fp32",
                threads: int = 1, **options: Any) -> Compiled:
        if format != "dense" or values != "fp32":
            raise BadInputError(f"engine torch-dense runs format 'dense' with fp32 values; got "
                                f"format {format!r}, values {values!r}")
        from ..runtime.compile import check_threads

        threads = check_threads(threads)
        torch.set_num_threads(threads)
        model = model.eval()

        @torch.inference_mode()
        def run(x: torch.Tensor) -> torch.Tensor:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            return model(x)

        # function attributes (mypy has no notion of them): what the profiler and bench read
        run.__dict__.update(model=model, threads_effective=threads)
        return run


ENGINES.add("torch-dense", TorchDense())
