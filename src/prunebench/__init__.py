"""prunebench: which way of storing a pruned network's weights makes inference smaller and
faster on ordinary CPUs, and what it costs in accuracy — answered with measurements."""
from . import errors, zoo
from .errors import BadInputError, FormatError, PrunebenchError, VerificationError

__version__ = "0.1.0"

__all__ = ["errors", "zoo", "BadInputError", "FormatError", "PrunebenchError",
           "VerificationError", "__version__"]
