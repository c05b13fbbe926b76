"""The driver's one error type: a problem the user can fix, described in one line."""
from __future__ import annotations

import re

__all__ = ["DriverError", "UNSAFE_TEXT", "printable"]

# C0/C1 controls (escape sequences, line breaks), Unicode line separators and bidi
# overrides: printed to a terminal they can fake, hide or reorder output lines.
UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class DriverError(Exception):
    """Bad package, board, image or camera; the CLI prints the message and exits non-zero."""

    exit_code = 2


def printable(text) -> str:
    """``text`` with its control characters escaped (``\\x1b``), safe to print on a terminal."""
    return UNSAFE_TEXT.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))
