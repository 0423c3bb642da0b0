"""One error type for bad input: a single line that names the file, the row or column, and what is wrong."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (data file, sample sheet, config, gene sets, model file).

    The message is one line: ``<file>: <where>: <what is wrong>``. The command-line
    entry points print it as ``error: <message>`` and exit with status 2.
    """

    def __init__(self, message: str, *, path=None, where: str | None = None):
        parts = []
        if path is not None:
            parts.append(str(path))
        if where:
            parts.append(str(where))
        parts.append(" ".join(str(message).split()))  # force a single line
        super().__init__(": ".join(parts))
