"""The driver's one error type: a problem the user can fix, described in one line."""
from __future__ import annotations


class DriverError(Exception):
    """Bad package, board, image or camera; the CLI prints the message and exits non-zero."""

    exit_code = 2
