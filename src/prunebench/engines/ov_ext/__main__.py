"""``python -m prunebench.engines.ov_ext``: build the OpenVINO extension (``make setup``)."""
import sys

from ...errors import PrunebenchError
from . import library

try:
    print(library())
except PrunebenchError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
