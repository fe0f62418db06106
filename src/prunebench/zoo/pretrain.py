"""Train zoo checkpoints that are not cached yet, two at a time.

A cold study trains every (model, seed) it prunes before measuring it; training is
single-threaded (:func:`prunebench.train.fit`), so on a 2-core machine one core idles.
:func:`train_missing` trains the missing checkpoints in this process and in one child process
(``python -m prunebench.zoo.pretrain NAME:SEED ...``) at the same time, before any timing
starts. The checkpoints are the same bits as when trained one after the other (same code,
seeds and one thread each) and are written atomically, so a killed child leaves nothing half
written; whatever a failed child did not train is trained by the caller later as usual.
Models registered outside the zoo (a study's matched controls) reach the child as the modules
that register them (``registers``), which it imports first: the zoo knows nothing above it.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import Callable, Iterable, Sequence


def missing(pairs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """The (model, seed) pairs whose trained checkpoint is not in the cache (zoo models that
    train on a dataset; pretrained and latency-only models have none)."""
    from . import models

    out = []
    for name, seed in dict.fromkeys(pairs):
        spec = models.get_spec(name)
        if spec.trained and spec.weights is None \
                and not models.checkpoint_paths(spec, seed)[0].exists():
            out.append((name, seed))
    return out


def split(pairs: list[tuple[str, int]], cost: Callable[[str, int], float]
          ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Two lists of about equal total ``cost``: longest first, each to the lighter side."""
    sides: tuple[list[tuple[str, int]], list[tuple[str, int]]] = ([], [])
    load = [0.0, 0.0]
    for p in sorted(pairs, key=lambda p: -cost(*p)):
        i = 0 if load[0] <= load[1] else 1
        sides[i].append(p)
        load[i] += cost(*p)
    return sides


def train_missing(pairs: Iterable[tuple[str, int]],
                  cost: Callable[[str, int], float] = lambda name, seed: 1.0,
                  on_trained: Callable[[str, int], None] | None = None,
                  registers: Sequence[str] = ()) -> int:
    """Train the checkpoints of ``pairs`` that are missing, half of them in a child process
    (when there are two or more and two CPUs). Returns how many were missing. Ctrl-C kills the
    child and propagates. ``registers``: modules the child imports before it loads anything,
    those that register the models of ``pairs`` that are not the zoo's own."""
    from . import load, load_dataset, models

    todo = missing(pairs)
    if len(todo) < 2 or (os.cpu_count() or 1) < 2:
        return len(todo)
    for name in dict.fromkeys(models.get_spec(n).dataset for n, _ in todo):
        if name is not None:
            load_dataset(name)  # generated and cached once, before two processes want it
    mine, theirs = split(todo, cost)
    child = subprocess.Popen([sys.executable, "-m", "prunebench.zoo.pretrain",
                              *[f"--register={m}" for m in registers],
                              *[f"{n}:{s}" for n, s in theirs]],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for name, seed in mine:
            load(name, trained=True, seed=seed)
            if on_trained is not None:
                on_trained(name, seed)
        _, err = child.communicate()
    except BaseException:
        child.kill()
        child.wait()
        raise
    if child.returncode == 0 and on_trained is not None:
        for name, seed in theirs:
            on_trained(name, seed)
    elif child.returncode != 0:
        last = (err or "").strip().splitlines()[-1:] or [f"exit status {child.returncode}"]
        print(f"prunebench: training in a second process failed ({last[0]}); the rest is "
              "trained in this one", file=sys.stderr)
    return len(todo)


def main(argv: list[str]) -> int:
    """``[--register=MODULE ...] NAME:SEED ...``: import each MODULE (it registers models),
    then train (or find cached) each checkpoint."""
    from . import load

    for arg in argv:
        if arg.startswith("--register="):
            importlib.import_module(arg.removeprefix("--register="))
    for arg in argv:
        if not arg.startswith("--register="):
            name, _, seed = arg.rpartition(":")
            load(name, trained=True, seed=int(seed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
