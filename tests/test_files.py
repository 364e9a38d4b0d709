"""Files written whole or not at all: a write that fails leaves the old file and nothing beside it."""

import os

import pytest

from src.files import atomic_file, write_atomic


def test_an_atomic_write_that_fails_keeps_the_old_content(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_atomic(path, 42)  # not text: fails while writing
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no partial file left behind


def test_a_binary_atomic_write_replaces_whole_with_the_usual_permissions(tmp_path):
    path = tmp_path / "cache.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(path, "wb") as file:
        file.write(b"half")
        raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["cache.npz"]
    with atomic_file(path, "wb") as file:
        file.write(b"new")
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by others
