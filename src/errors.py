"""One exception type for mistakes a user can fix, so the CLI can show them without a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UserInputError(ValueError):
    """Bad configuration, arguments or data; the message says what was wrong and how to fix it."""


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """For a command's ``main``: a :class:`UserInputError` becomes one ``error: ...`` paragraph on
    stderr and exit status 2; a traceback would bury a mistake the user can fix."""
    try:
        yield
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
