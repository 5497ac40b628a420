"""The one base of every error a user can fix (a wrong path, key, file or value).

A command line ends on a :class:`UserError` with exit status 2 and one line
``error: <message>`` on standard error, no traceback; the message names the file (and line)
and says what to do. Anything else is a bug and keeps its traceback. The one place that turns
the error into that line is `desed_task.command_line.run_command`, which every command runs.

A new user error: subclass :class:`UserError` (or one of its subclasses) next to the code that
raises it, and raise it with a message naming the file and the fix; no command needs a change.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; ``str(err)`` is the whole message (file, line, the fix)."""

    exit_code: int = 2

    def error_line(self) -> str:
        """The line a command prints on standard error before it exits with ``exit_code``."""
        return f"error: {self}"


class OptionError(UserError):
    """A command-line option whose value cannot work (a range, a pair of options that exclude
    each other); the message names the option and the value to give."""


class MissingPackage(UserError):
    """An optional package the asked-for work needs is not installed; the message says what to
    install (e.g. ``pip install -e '.[export]'``)."""
