"""Exception types shared by every package.

The CLI turns any :class:`PrunebenchError` into one line on stderr and exit status 2,
so every message must name the argument (or file/layer), the value given and what is allowed.
"""


class PrunebenchError(Exception):
    """Base class of every error prunebench raises on purpose."""


class BadInputError(PrunebenchError, ValueError):
    """A user-supplied argument is invalid (unknown name, out of range, wrong type)."""


class FormatError(PrunebenchError):
    """Encoded data (a format object or a model file) is malformed or inconsistent."""


class VerificationError(PrunebenchError):
    """A compiled / re-encoded model does not compute what the dense reference computes."""


class StoreError(PrunebenchError):
    """The results database cannot be opened or written (wrong file, unwritable path)."""
