"""Memory figures: bytes of parameters in memory, bytes of the saved file, and peak RSS of a
fresh child process that loads the model and runs one batch."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from torch import nn

from ..errors import PrunebenchError


def param_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer as held in memory."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def state_file_bytes(model: nn.Module) -> int:
    """Size of the model's state dict saved as a safetensors file (dense, as stored)."""
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.safetensors"
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
        return path.stat().st_size


def peak_rss() -> int:
    """High-water RSS of this process image. VmHWM is reset by execve; ru_maxrss is not (it
    keeps the parent's RSS at fork time), so ru_maxrss is only the fallback."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_rss_child(args: list[str], label: str, timeout: float = 600) -> int:
    """Run ``python ARGS`` with this checkout's ``src`` on the path and return the
    ``peak_rss_bytes`` its last stdout line reports as JSON (what every RSS child prints)."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                         timeout=timeout, env=env)
    if out.returncode != 0:
        raise PrunebenchError(f"peak RSS child for {label} failed: "
                              f"{out.stderr.strip().splitlines()[-1:] or out.returncode}")
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_bytes"])


def peak_rss_child(model_name: str, batch: int, threads: int, seed: int = 0,
                   timeout: float = 600) -> int:
    """Peak resident set size (bytes) of a new Python process that imports prunebench, loads
    ``model_name`` (cached checkpoint) and runs one batch: so one model's memory does not
    pollute another's. The figure includes the interpreter and torch themselves (about
    300 MB on the development machine)."""
    return run_rss_child(["-m", "prunebench.measure._rss_child", model_name, str(batch),
                          str(threads), str(seed)], model_name, timeout)
