"""The one runner of every command line (the scripts at the root and ``python -m desed_task.*``).

A command is a function without arguments that returns its exit status (None: 0). The runner
ends it the same way for every command:

- a :class:`~desed_task.errors.UserError` (a wrong path, key, file, value or a missing optional
  package): its one ``error: ...`` line on standard error, exit status 2, no traceback;
- :class:`Interrupted` (a run stopped by a signal at a safe point): its message, the shell's
  status of a killed command, 128 + the signal number;
- Ctrl-C elsewhere: one line, 128 + SIGINT;
- anything else is a bug: it propagates with its traceback (exit status 1).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from desed_task.errors import UserError

CTRL_C_MESSAGE = "interrupted by Ctrl-C (SIGINT)"


class Interrupted(Exception):
    """A run stopped by SIGTERM or Ctrl-C at a safe point; ``str(err)`` says how to go on
    (empty: print nothing, e.g. on the other processes of a distributed run)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


def run_command(command: Callable[[], int | None], ctrl_c_message: str = CTRL_C_MESSAGE) -> int:
    """Run ``command`` and return the exit status of the process.

    Args:
        command: the work of the command line, its options already parsed; returns its status
            (None counts as 0).
        ctrl_c_message: the line printed when Ctrl-C stops the command outside an
            :class:`Interrupted` ending (e.g. what was, or was not, written).

    Returns:
        The command's own status, the error's ``exit_code`` (2) after its ``error:`` line, or
        128 + the signal number after an interruption. Any other exception propagates.
    """
    try:
        status = command()
    except UserError as err:
        print(err.error_line(), file=sys.stderr, flush=True)
        return err.exit_code
    except Interrupted as stop:
        if str(stop):
            print(stop, file=sys.stderr, flush=True)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(ctrl_c_message, file=sys.stderr, flush=True)
        return 128 + signal.SIGINT
    return 0 if status is None else int(status)
