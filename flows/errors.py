"""Errors a user can act on: the CLI prints their one-line message and exits non-zero."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or a request that cannot be met; the message is one line."""

    exit_code = 2


class ToolMissing(UserError):
    """A step needs a tool this machine lacks (Vivado, Vitis HLS, finn-hlslib)."""

    exit_code = 3


class DoesNotFit(UserError):
    """The design exceeds the board's resources."""

    exit_code = 4


class VerificationFailed(UserError):
    """A verified stage was not bit-exact."""

    exit_code = 5
