"""The one root of the errors a user can act on, with the exit code on the class.

Every layer raises these (or subclasses of them); the CLI prints the one-line message
and exits with ``exit_code``. Anything else that escapes is a bug (exit 1). The board
driver (``bnn2fpga.hw.driver``) keeps its own root: it runs on the board without this package.
"""
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
