"""Exceptions that map to the documented exit codes (0 ok, 1 failure while running, 2 bad input)."""


class UserError(Exception):
    """Bad input or a missing requirement: the run stops with exit code 2 and this one-line message."""

    exit_code = 2


class RunFailure(Exception):
    """A step failed after the outputs before it were written: exit code 1 and this one-line message."""

    exit_code = 1
