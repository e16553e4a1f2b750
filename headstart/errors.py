"""The base class of every mistake a user can make and fix (a bad setting, a missing file, a wrong name).

The CLI and the stage entry points print a :class:`UserError` as one line and exit with status 2; any other
exception is a fault of headstart and keeps its traceback. Each part of headstart derives its own error
classes from it (``ConfigError``, ``BackboneError``, ``HeadError``, ...), keeping their old built-in base
(``ValueError``, ``RuntimeError``) so existing ``except`` clauses still catch them.

>>> class MyError(UserError, ValueError): ...
>>> isinstance(MyError("bad"), UserError)
True
"""

from __future__ import annotations

__all__ = ["SettingsError", "UserError"]


class UserError(Exception):
    """A mistake in the user's input; the message names the input and the fix."""


class SettingsError(UserError, ValueError):
    """A setting holds a value its type cannot use.

    ``key`` is the field's name inside its settings type (``batch_size``); whoever built the settings puts it
    into the user's terms: params.yaml's dotted key (``embed.batch_size``) or the CLI flag (``--batch-size``).
    """

    def __init__(self, problem: str, key: str = "") -> None:
        self.key, self.problem = key, problem
        super().__init__(f"{key} {problem}" if key else problem)
