"""Files written whole or not at all: a crash, a full disk or a read-only folder leaves the old
file or none, never a part, and says which file in one :class:`~src.errors.CannotWrite`."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from src.errors import CannotWrite


def write_atomic(path: str | Path, content: str | bytes) -> None:
    """Write ``content`` so that ``path`` holds either its old content or all of the new, never a part."""
    with atomic_file(path, "wb" if isinstance(content, bytes) else "w") as file:
        file.write(content)


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A file to write that replaces ``path`` only when the block ends without an error and its
    content is on the disk (fsync); until then it is a hidden ``.partial`` file beside it, unique
    per writer, removed if anything fails. Every file the project writes goes through here, so a
    full disk or a read-only folder leaves the old file or none, and raises :class:`CannotWrite`."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(partial, mode.replace("w", "x"))
    except OSError as err:
        raise CannotWrite(path, err) from err
    try:
        with file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # a full disk may only say so now (delayed allocation, quotas, NFS)
        os.replace(partial, path)
    except OSError as err:
        raise CannotWrite(path, err) from err
    finally:
        partial.unlink(missing_ok=True)
