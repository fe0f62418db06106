"""The ``prunebench`` Typer app: every command registered in the order ``--help`` lists them,
and :func:`main`, which turns every error prunebench raises on purpose (and every usage error)
into one line on stderr and exit status 2; Ctrl-C exits 130."""
from __future__ import annotations

import sys
from typing import Any, Optional

import typer

from ..errors import PrunebenchError
from . import options
from .bench import bench, demo
from .kernels import kernels
from .models import models, train
from .plan import plan_cmd
from .prune import inspect, pack, prune_cmd
from .results import merge, report, results
from .study import study

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Measure which storage format makes a pruned network smaller and faster.")
app.command()(models)
app.command()(train)
app.command()(bench)
app.command()(kernels)
app.command()(demo)
app.command(name="prune")(prune_cmd)
app.command()(pack)
app.command()(inspect)
app.command()(results)
app.command()(study)
app.command()(merge)
app.command()(report)
app.command(name="plan")(plan_cmd)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, line: Optional[str] = None) -> str:
    return f"prunebench: warning: {message}\n"


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: run the app, turning expected errors into one line and exit 2."""
    import warnings

    args = list(sys.argv[1:] if argv is None else argv)
    options.ARGV[:] = args  # for run_in_profile, which runs this command again in a child

    warnings.formatwarning = _one_line_warning
    try:
        from ..usermodel import rewrite_argv   # --model module:factory, .onnx / graph files

        args = rewrite_argv(args)
        # no arguments: the app's help on stdout, exit 0 (what no_args_is_help does, asked
        # for by name so that no usage error has to be told apart from it)
        rv: Any = app(args=args or ["--help"], prog_name="prunebench", standalone_mode=False)
        # typer >= 0.2x turns Ctrl-C into Exit(130) itself and, outside standalone mode,
        # *returns* 130 instead of raising: without this the interrupted command exited 0
        if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
            if rv == 130:
                print("prunebench: interrupted", file=sys.stderr)
            return rv
    except PrunebenchError as e:
        print(f"prunebench: error: {e}", file=sys.stderr)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        print("prunebench: interrupted", file=sys.stderr)
        return 130
    except MemoryError as e:  # a size far beyond the machine: one line, not a traceback
        msg = (str(e) or "allocation failed").replace("\n", " ")
        print(f"prunebench: error: not enough memory: {msg}; use smaller sizes", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except OSError as e:  # disk full, unwritable or odd path reached past the checks: one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"prunebench: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except typer.TyperException as e:  # a usage error (unknown option, missing argument, ...)
        msg = e.format_message().replace("\n", " ")
        print(f"prunebench: error: {msg}", file=sys.stderr)
        return 2
    return 0


def entry() -> None:
    """The ``prunebench`` console script."""
    sys.exit(main())
