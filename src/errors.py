"""One exception type for mistakes a user can fix, so the CLI can show them without a traceback."""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class UserInputError(ValueError):
    """Bad configuration, arguments or data; the message says what was wrong and how to fix it."""


# Why a file could not be written, as a user can act on it: make space, or write where one may.
NO_SPACE = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is used up"}
NOT_WRITABLE = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                errno.EROFS: "read-only file system"}


class CannotWrite(UserInputError):
    """A file could not be written (a full disk, no permission, a read-only file system). The
    project writes files whole or not at all, so what was written before is intact. ``then`` says
    what to do besides making room or permission, e.g. ``"or choose another --output"``."""

    def __init__(self, path: str | Path, error: OSError, then: str = "or write somewhere else") -> None:
        self.path, self.error = Path(path), error
        cause = NO_SPACE.get(error.errno) or NOT_WRITABLE.get(error.errno) or error.strerror or str(error)
        remedy = ("Free some space there" if error.errno in NO_SPACE else
                  "Make it writable" if error.errno in NOT_WRITABLE else "Check that path")
        super().__init__(f"Cannot write {path} ({cause}). {remedy}, {then}; what was written before is intact.")


def write_failure(exception: BaseException, where: str | Path) -> CannotWrite | None:
    """The failed write behind ``exception``, which a library may have wrapped in another exception
    or raised again from another thread: the first :class:`CannotWrite` among its causes, else one
    for the first ``OSError`` of a full disk or a folder that is not writable, naming its file or
    else ``where``. None when no write failed, or when ``exception`` is another
    :class:`UserInputError`, which says itself what went wrong."""
    if isinstance(exception, UserInputError) and not isinstance(exception, CannotWrite):
        return None
    chain: list[BaseException] = []
    error: BaseException | None = exception
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    chain.reverse()  # the first failure first
    for error in chain:
        if isinstance(error, CannotWrite):
            return error
    for error in chain:
        if isinstance(error, OSError) and (error.errno in NO_SPACE or error.errno in NOT_WRITABLE):
            return CannotWrite(error.filename or where, error)
    return None


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """For a command's ``main``: a :class:`UserInputError` becomes one ``error: ...`` paragraph on
    stderr and exit status 2; a traceback would bury a mistake the user can fix."""
    try:
        yield
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
