"""``python -m tests.study.run_study SPEC OUT`` (from the repository root): the study command
as the CLI runs it (Ctrl-C -> exit 130), with the test engines registered; the tests start it
as a subprocess and interrupt it."""
import sys

from tests.study import fake_engines

fake_engines.register()

from prunebench.errors import PrunebenchError  # noqa: E402
from prunebench.cli.study import study_command  # noqa: E402

try:
    study_command(sys.argv[1], out=sys.argv[2], as_json=True)
except PrunebenchError as e:
    print(f"prunebench: error: {e}", file=sys.stderr)
    sys.exit(2)
except KeyboardInterrupt:
    print("prunebench: interrupted", file=sys.stderr)
    sys.exit(130)
