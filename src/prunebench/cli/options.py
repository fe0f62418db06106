"""The option types the commands share and the checks they make before any model is loaded.

Every check raises :class:`~prunebench.errors.BadInputError` with one line naming the option,
the value given and what is allowed (``main`` prints it and exits 2). The checks live here, not
in Typer types, because their order is part of the interface: each command checks what is cheap
first and only what its other options make relevant (``--block`` is not read by a dense
``bench``), with the messages ``pruning``, ``formats`` and ``measure`` already give."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..dtypes import VALUE_ENCODINGS
from ..errors import BadInputError
from ..recipe import FINETUNE_STEPS, VALIDATION_FRACTION

DEFAULT_DB = "runs/results.sqlite"

# ------------------------------------------------------------------ shared option types

JsonDoc = Annotated[bool, typer.Option("--json", help="print one JSON document")]
JsonSummary = Annotated[bool, typer.Option("--json", help="print a JSON summary")]
Seed = Annotated[int, typer.Option("--seed", help="model, scoring and fine-tuning seed")]
Values = Annotated[str, typer.Option("--values", help="fp32 | fp16 | int8")]
N = Annotated[int, typer.Option("--n", help="N of N:M")]
M = Annotated[int, typer.Option("--m", help="M of N:M")]
Norm = Annotated[str, typer.Option("--norm", help="l1 | l2 (block and channel ranking)")]

PRUNE_HELP = {
    "method": "random | magnitude | gradient | taylor | block | nm | channel",
    "scope": "layer (same sparsity per layer) | global (one threshold)",
    "schedule": "oneshot | iterative | iterative-linear | gradual | rewind",
    "layers": ("comma-separated module names, 'all', or 'default' = every Linear/Conv/RNN "
               "except the first and the last"),
}
Method = Annotated[str, typer.Option("--method", help=PRUNE_HELP["method"])]
Sparsity = Annotated[float, typer.Option("--sparsity", help="fraction removed, in [0, 1)")]
Scope = Annotated[str, typer.Option("--scope", help=PRUNE_HELP["scope"])]
Schedule = Annotated[str, typer.Option("--schedule", help=PRUNE_HELP["schedule"])]
Layers = Annotated[Optional[str], typer.Option("--layers", help=PRUNE_HELP["layers"])]

# fine-tuning options shared by prune, pack, plan and bench (prunebench.train.Finetune)
FT_STEPS_HELP = (f"most fine-tuning steps (default {FINETUNE_STEPS}; early stopping may use "
                 "fewer; 0: none)")
FinetuneSteps = Annotated[int, typer.Option("--finetune-steps", help=FT_STEPS_HELP)]
Rounds = Annotated[Optional[int], typer.Option("--rounds",
                                               help="rounds of iterative / rewind (default 3)")]
FinetuneLr = Annotated[Optional[float], typer.Option(
    "--finetune-lr", help="fine-tuning learning rate (default: the model's training recipe)")]
FinetuneBatch = Annotated[Optional[int], typer.Option(
    "--finetune-batch", help="fine-tuning batch size (default: the model's training recipe)")]
FinetuneEpochs = Annotated[Optional[float], typer.Option(
    "--finetune-epochs", help="budget in passes over the fine-tuning data (replaces "
                              "--finetune-steps)")]
FinetuneSchedule = Annotated[Optional[str], typer.Option(
    "--finetune-schedule", help="constant | cosine (default constant; cosine with --distill)")]
NoEarlyStop = Annotated[bool, typer.Option(
    "--no-early-stop", help="train the whole budget (convergence is still judged)")]
Validation = Annotated[float, typer.Option(
    "--validation", help="fraction of the training split held out to judge convergence "
                         "(0: none)")]
VALIDATION_DEFAULT = VALIDATION_FRACTION


# the user's own model: usermodel.rewrite_argv reads these four before Typer parses (it
# registers the model and passes its name as MODEL); declared here for --help
def _read_before_typer(param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
    if value is not None:  # only when app() is called directly, bypassing main()
        raise BadInputError(f"{param.opts[0]}: is read by prunebench.cli.main, which registers "
                            "the model; call main(), not app()")
    return value


UserModel = Annotated[Optional[str], typer.Option(
    "--model", callback=_read_before_typer, metavar="MODULE:FACTORY",
    help="your own model instead of the model argument: package.module:factory, a function "
         "returning an nn.Module")]
InputShape = Annotated[Optional[str], typer.Option(
    "--input-shape", callback=_read_before_typer, metavar="1,N",
    help="input shape for --model (or an .onnx file with open dims), batch 1 first, e.g. 1,40 "
         "or 1,3,32,32")]
ExampleInput = Annotated[Optional[str], typer.Option(
    "--example-input", callback=_read_before_typer, metavar="FILE.npy",
    help="an example input for --model instead of --input-shape")]
DataFile = Annotated[Optional[str], typer.Option(
    "--data", callback=_read_before_typer, metavar="FILE.npz",
    help="x_test, y_test for accuracy (x_train, y_train for fine-tuning); without it: fidelity "
         "to the dense model")]

# ------------------------------------------------------------------ checks and parsers

_FT_FLAGS = {"finetune_lr": "--finetune-lr", "finetune_batch": "--finetune-batch",
             "finetune_epochs": "--finetune-epochs", "finetune_schedule": "--finetune-schedule",
             "early_stop": "--no-early-stop", "validation": "--validation"}


def finetune_args(lr: Optional[float], batch: Optional[int], epochs: Optional[float],
                  schedule: Optional[str], no_early_stop: bool,
                  validation: float) -> dict[str, Any]:
    """``prune()``'s fine-tuning keywords from the CLI options, checked (one line naming the
    flag on bad input)."""
    from ..train import Finetune

    try:
        Finetune(lr=lr, batch_size=batch, epochs=epochs, lr_schedule=schedule,
                 early_stop=not no_early_stop, validation=validation).checked()
    except BadInputError as e:
        name, rest = str(e).split(":", 1)
        raise BadInputError(f"{_FT_FLAGS.get(name, name)}:{rest}") from None
    return {"finetune_lr": lr, "finetune_batch": batch, "finetune_epochs": epochs,
            "finetune_schedule": schedule, "early_stop": not no_early_stop,
            "validation": validation}


def parse_block(block: str) -> tuple[int, int]:
    """``--block ROWSxCOLS`` as (rows, cols), both >= 1."""
    try:
        r, c = (int(v) for v in block.lower().split("x"))
    except ValueError:
        r = c = 0
    if r < 1 or c < 1:
        raise BadInputError(f"--block: got {block!r}, expected ROWSxCOLS of integers >= 1 such "
                            "as 4x4")
    return r, c


def parse_layers(layers: Optional[str]) -> Optional[str | list[str]]:
    """``--layers``: None for the pruning default, "all", or the list of module names."""
    if layers is None or layers == "default":
        return None
    if layers == "all":
        return "all"
    return [v for v in layers.split(",") if v]


#: ``bench --min-time`` above this many seconds is a typo, not a measurement plan
MAX_MIN_TIME = 3600.0  # = measure.timer.MAX_TIMED_S (the spec's bound), kept import-free


def check_timing_options(warmup: int, min_runs: int, min_time: float) -> None:
    """``--warmup``, ``--min-runs``, ``--min-time``: the Timer's own checks (NaN and inf
    refused), made before a model is loaded, and at most an hour of timed calls."""
    from ..measure.timer import check_timing

    check_timing(warmup, min_runs, min_time)
    if min_time > MAX_MIN_TIME:
        raise BadInputError(f"--min-time: got {min_time:g}; allowed: seconds in "
                            f"[0, {MAX_MIN_TIME:g}]")


def check_batch_fits(model: str, batch: int) -> None:
    """``--batch``: the inputs of one call alone must fit in this machine's memory (a huge
    batch is refused here, not by a MemoryError after the model is loaded)."""
    from ..benchmark import batch_too_big

    too_big = batch_too_big(model, batch)
    if too_big:
        raise BadInputError(f"--batch: got {batch}; {too_big}")


def check_prune_options(model: Optional[str], method: str, sparsity: float, *,
                        scope: str = "layer", schedule: str = "oneshot",
                        finetune_steps: int = 0, rounds: Optional[int] = None,
                        block: str = "4x4", n: int = 2, m: int = 4, norm: str = "l1",
                        layers: Optional[str] = None, seed: int = 0) -> None:
    """The pruning options of prune, pack and bench --method, judged by the validators
    ``pruning.prune`` uses, before the zoo ``model`` is loaded (and trained on a cold cache).
    ``--layers`` names are looked up in the untrained architecture (the same module names);
    ``model`` None (a model file) skips that."""
    from .. import zoo
    from ..pruning import METHODS, SCHEDULES, SCOPES, select_layers
    from ..pruning.validate import (check_int, check_nm, check_norm, check_schedule_options,
                                    check_sparsity)

    spec = METHODS.get(method)
    SCOPES.get(scope)
    SCHEDULES.get(schedule)
    check_sparsity(sparsity)
    check_int("finetune_steps", finetune_steps, 0)
    check_schedule_options(schedule, rounds, None)
    zoo.check_seed(seed)
    parse_block(block)  # parsed for every method, as run_prune does
    if spec.granularity in ("block", "channel"):  # what the granularity reads
        check_norm(norm)
    elif spec.granularity == "nm":
        check_nm(n, m)
    chosen = parse_layers(layers)
    if model is not None and not isinstance(chosen, str):  # a str is "all"
        select_layers(zoo.get_spec(model).build(), chosen)


def check_format_options(format: str, values: str, *, bits: int, block: str, n: int, m: int,
                         rank: Optional[int], energy: Optional[float]) -> None:
    """pack's ``--format`` and the options it takes, judged by the format itself before any
    pruning (as study specs are). A model-wide ``--rank`` is capped at each matrix's
    min(rows, cols) when encoding, so any rank >= 1 is allowed."""
    from ..formats import FORMATS
    from ..formats.base import check_int_option

    if format not in FORMATS:
        raise BadInputError(f"--format: unknown format {format!r}; valid: {', '.join(sorted(FORMATS))}")
    if values not in VALUE_ENCODINGS:
        raise BadInputError(f"--values: got {values!r}; allowed: {', '.join(VALUE_ENCODINGS)}")
    cls = FORMATS.get(format)
    raw = {"bits": bits, "n": n, "m": m, "rank": rank, "energy": energy}
    for k, allowed in cls.option_choices.items():
        if raw[k] not in allowed:
            raise BadInputError(f"--{k}: got {raw[k]}; allowed: {', '.join(map(str, allowed))}")
    if cls.one_of_options and sum(raw[k] is not None for k in cls.one_of_options) != 1:
        raise BadInputError(f"--format {format}: pass exactly one of " + " or ".join(
            f"--{k} ({what})" for k, what in cls.one_of_options.items()))
    given = {"bits": bits, "block": parse_block(block), "n": n, "m": m, "rank": rank,
             "energy": energy}
    opts = {k: given[k] for k in cls.option_defaults if given.get(k) is not None}
    side = 16
    if "rank" in opts:
        side = check_int_option(format, "rank", rank, 1)
    cls._check_options((side, side), **{**cls.option_defaults, **opts})


def check_output(output: str) -> None:
    """``-o FILE``: a file path in an existing, writable folder."""
    p = Path(output)
    if p.is_dir():
        raise BadInputError(f"-o: {output!r} is a directory, expected a file path")
    if not p.parent.exists():
        raise BadInputError(f"-o: folder {str(p.parent)!r} does not exist")
    if not p.parent.is_dir():
        raise BadInputError(f"-o: {str(p.parent)!r} is a file, not a folder")
    if not os.access(p.parent, os.W_OK):
        raise BadInputError(f"-o: folder {str(p.parent)!r} is not writable")


def check_profile_threads(profile: str, threads: int) -> None:
    """``--profile`` is a known run profile, and the edge profile runs on one thread."""
    from ..measure.profile import PROFILES

    if profile not in PROFILES:
        raise BadInputError(f"--profile: got {profile!r}; allowed: {', '.join(PROFILES)}")
    if profile == "edge" and threads != 1:
        raise BadInputError(f"--threads: got {threads} with --profile edge; the edge profile "
                            "runs on 1 thread")


#: this invocation's arguments (``main`` sets them), for :func:`run_in_profile`
ARGV: list[str] = []


def run_in_profile(profile: str) -> None:
    """Run this command again in a child process in ``profile`` unless this process already
    runs in it (numba and torch read the profile's variables when they load); exit with the
    child's status."""
    from ..measure.profile import run_in_profile as run_child

    rc = run_child(profile, ARGV)
    if rc is not None:
        raise typer.Exit(rc)
