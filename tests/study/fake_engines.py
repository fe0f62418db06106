"""Two engines for the study tests, registered beside the real ones: ``test-decode`` runs a
model whose weight matrices went through a storage format and back (so every format's
encode/decode is exercised), ``test-broken`` returns outputs 1% off (verification must fail
and the job must be stored as failed, never timed)."""
from __future__ import annotations

import copy

import torch

from prunebench.engines import ENGINES, Engine


class DecodeEngine(Engine):
    name = "test-decode"
    formats = ("csr", "bsr")

    def compile(self, model, format="dense", *, values="fp32", threads=1, **options):
        from prunebench.runtime.modelfile import _weight_matrices, encode_model

        net = copy.deepcopy(model).eval()
        if isinstance(format, dict):  # {module: format}: those modules' matrices
            format = {name: format[pname.rsplit(".", 1)[0]]
                      for name, (pname, _, _) in _weight_matrices(net).items()
                      if pname.rsplit(".", 1)[0] in format}
        opts = {k: v for k, v in options.items() if k in ("block", "n", "m")}
        layers, _ = encode_model(net, format, values=values, keep_smaller=False, **opts)
        params = dict(net.named_parameters())
        with torch.no_grad():
            for lname, (pname, g, gates) in _weight_matrices(net).items():
                p = params[pname]
                view = p.view(gates, p.shape[0] // gates, -1)
                view[g].copy_(torch.from_numpy(layers[lname].to_dense()))
        torch.set_num_threads(threads)

        @torch.inference_mode()
        def run(x):
            return net(x)

        return run


class BrokenEngine(Engine):
    name = "test-broken"
    formats = ("csr",)

    def compile(self, model, format="dense", *, values="fp32", threads=1, **options):
        net = model.eval()

        @torch.inference_mode()
        def run(x):
            return net(x) * 1.01

        return run


def register() -> None:
    for eng in (DecodeEngine(), BrokenEngine()):
        if eng.name not in ENGINES:
            ENGINES.add(eng.name, eng)
