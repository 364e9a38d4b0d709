"""A small disk to fill up or make read-only: a tmpfs of its own where the suite runs as root, else
a folder whose writes are made to fail in this process as a full or read-only disk's would."""

from __future__ import annotations

import builtins
import errno
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

SIZE = 64 * 2**20  # a run after its first epoch (two 15 MB checkpoints of Adam and small files) fits twice
PAGE = 4096
DISKS: dict[Path, SmallDisk] = {}  # by path, for what a run's callback fills (tests.faults.FillDiskAt)


class SmallDisk:
    """``path`` on a file system of its own (``real``: a tmpfs) or, without the right to mount one,
    a plain folder that :meth:`fill` and :meth:`make_read_only` affect for this process only (what
    ``open`` and ``os.mkdir`` do there), so a test that runs tools in a subprocess needs ``real``."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path, self._monkeypatch = path, monkeypatch
        path.mkdir()
        self.real = _mount(path, f"size={SIZE}")
        self._left: int | None = None  # bytes the simulated disk still takes
        self._read_only = False
        if not self.real:
            self._simulate()
        DISKS[path] = self

    def fill(self, leave: int = 0) -> None:
        """Take all free space but ``leave`` bytes (on a tmpfs: as many whole pages as they need)."""
        if not self.real:
            self._left = leave
            return
        filler = self.path / "filler"
        with open(filler, "ab", buffering=0) as file:
            for chunk in (2**20, PAGE, 1):  # to the last byte
                try:
                    while True:
                        file.write(b"\0" * chunk)
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err
        os.truncate(filler, filler.stat().st_size - -(-leave // PAGE) * PAGE)

    def make_read_only(self) -> None:
        if self.real:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)
        else:
            self._read_only = True

    def unmount(self) -> None:
        DISKS.pop(self.path)
        if self.real:
            subprocess.run(["umount", "--lazy", str(self.path)], check=True)

    # the simulated disk ------------------------------------------------------------------
    def _simulate(self) -> None:
        real_open, real_mkdir = builtins.open, os.mkdir

        def simulated_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            writes = isinstance(file, (str, bytes, os.PathLike)) and self._holds(file) and bool(set(mode) & set("wxa+"))
            if writes and self._read_only:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
            opened = real_open(file, mode, *args, **kwargs)
            return _Budgeted(opened, self) if writes else opened

        def simulated_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            if self._read_only and self._holds(path) and not os.path.exists(path):  # an existing one: EEXIST
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            real_mkdir(path, *args, **kwargs)

        for module in (builtins, io):
            self._monkeypatch.setattr(module, "open", simulated_open)
        self._monkeypatch.setattr(os, "mkdir", simulated_mkdir)

    def _holds(self, file: Any) -> bool:
        return Path(os.path.abspath(os.fsdecode(file))).is_relative_to(self.path)

    def _take(self, size: int) -> None:
        if self._left is not None:
            if size > self._left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._left -= size


class _Budgeted:
    """A file whose writes take from its simulated disk's free space."""

    def __init__(self, file: Any, disk: SmallDisk) -> None:
        self._file, self._disk = file, disk

    def write(self, data: Any) -> int:
        self._disk._take(len(data))
        return self._file.write(data)

    def __enter__(self) -> _Budgeted:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def __iter__(self) -> Any:
        return iter(self._file)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def _mount(path: Path, options: str) -> bool:
    """Whether a tmpfs could be mounted at ``path`` (as root, with the right to)."""
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0
