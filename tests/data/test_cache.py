"""The decoded cache: reused while its source is unchanged, rebuilt saying why when the source
changed or the cache is damaged, a cache made before caches kept a fingerprint checked and kept,
and one a full disk cannot take named, never left half-written."""

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.data.cache import CACHE_NAME
from src.data.image_folder import read_image_folder
from src.data.sources import load_cifar10
from src.errors import CannotWrite, UserInputError
from tests.synthetic import write_image_folder, write_tarball


def test_cache_is_written_once_and_reused_while_the_source_is_unchanged(editable_folder, tmp_path, forbid_decoding):
    data_dir = tmp_path / "data"
    first = load_cifar10(data_dir, editable_folder)
    assert (data_dir / CACHE_NAME).is_file()
    (editable_folder / "README.md").write_text("notes beside the images change nothing")
    forbid_decoding()
    again = load_cifar10(data_dir, editable_folder)
    np.testing.assert_array_equal(again["train"].images, first["train"].images)


def test_cache_is_used_with_a_warning_when_its_source_is_gone(editable_folder, tmp_path, caplog):
    data_dir = tmp_path / "data"
    first = load_cifar10(data_dir, editable_folder)
    shutil.rmtree(editable_folder)
    with caplog.at_level(logging.WARNING):
        again = load_cifar10(data_dir, editable_folder)
    assert f"The data source {editable_folder} is not there; using the cache" in caplog.text
    np.testing.assert_array_equal(again["test"].images, first["test"].images)


def test_cache_from_another_source_is_rebuilt(small_folder, tmp_path):
    data_dir = tmp_path / "data"
    load_cifar10(data_dir, small_folder)
    other = write_image_folder(tmp_path / "other", train_per_class=1, test_per_class=1)
    assert len(load_cifar10(data_dir, other)["train"].labels) == 10


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_cache_is_named_and_rebuilt_from_the_source(small_folder, tmp_path, caplog, damage):
    data_dir = tmp_path / "data"
    first = load_cifar10(data_dir, small_folder)
    cache = data_dir / CACHE_NAME
    whole = cache.read_bytes()
    cache.write_bytes(b"not a cache" if damage == "garbage" else whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING):
        again = load_cifar10(data_dir, small_folder)
    assert f"The cache {cache} is not a readable .npz file" in caplog.text
    np.testing.assert_array_equal(again["train"].images, first["train"].images)
    with np.load(cache) as rebuilt:  # and readable again
        np.testing.assert_array_equal(rebuilt["train_images"], first["train"].images)


def later(path, seconds=10):
    """Moves a file's mtime forward, as a copy made later would have it."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + seconds * 10**9))


@pytest.mark.parametrize("change, more_images", [("image replaced", 0), ("image removed", -1), ("image added", 1)])
def test_cache_is_rebuilt_saying_why_when_its_folder_changed(editable_folder, tmp_path, caplog, change, more_images):
    data_dir = tmp_path / "data"
    first = load_cifar10(data_dir, editable_folder)
    cat = sorted((editable_folder / "train" / "cat").iterdir())[0]
    if change == "image removed":
        cat.unlink()
    else:
        target = cat if change == "image replaced" else cat.with_name("new.png")
        Image.fromarray(np.full((32, 32, 3), 7, dtype=np.uint8)).save(target)
        later(target)
    with caplog.at_level(logging.INFO):
        again = load_cifar10(data_dir, editable_folder)
    assert f"The data source {editable_folder} changed since the cache" in caplog.text
    assert len(again["train"].labels) == len(first["train"].labels) + more_images
    holds_the_new_image = (again["train"].images == 7).all(axis=(1, 2, 3)).any()
    assert holds_the_new_image == (change != "image removed")
    with np.load(data_dir / CACHE_NAME) as rebuilt:
        np.testing.assert_array_equal(rebuilt["train_images"], again["train"].images)


def test_class_removed_after_caching_is_refused_not_served_from_the_cache(editable_folder, tmp_path):
    load_cifar10(tmp_path / "data", editable_folder)
    shutil.rmtree(editable_folder / "test" / "frog")
    with pytest.raises(UserInputError, match="no 'test' images for class\\(es\\) frog"):
        load_cifar10(tmp_path / "data", editable_folder)


def test_cache_is_rebuilt_when_its_archive_is_replaced(small_folder, tmp_path, caplog):
    archive, data_dir = tmp_path / "cifar.tar.gz", tmp_path / "data"
    load_cifar10(data_dir, write_tarball(small_folder, archive))
    write_tarball(write_image_folder(tmp_path / "other", train_per_class=1, test_per_class=1), archive)
    later(archive)
    with caplog.at_level(logging.INFO):
        assert len(load_cifar10(data_dir, archive)["train"].labels) == 10
    assert f"The data source {archive} changed since the cache" in caplog.text


def write_cache_without_fingerprint(cache, splits, origin):
    """A cache as it was written before caches recorded their source's fingerprint."""
    arrays = {f"{s}_{field}": getattr(splits[s], field) for s in splits for field in ("images", "labels")}
    np.savez(cache, origin=np.array(str(origin.resolve())), **arrays)


@pytest.mark.parametrize("packed", [False, True], ids=["directory", "tar.gz"])
def test_cache_without_fingerprint_of_an_unchanged_source_is_kept_and_fingerprinted(
    small_folder, tmp_path, forbid_decoding, caplog, packed
):
    source = write_tarball(small_folder, tmp_path / "cifar.tar.gz") if packed else small_folder
    (tmp_path / "data").mkdir()
    cache = tmp_path / "data" / CACHE_NAME
    decoded = read_image_folder(source)
    write_cache_without_fingerprint(cache, decoded, source)
    forbid_decoding()
    with caplog.at_level(logging.INFO):
        kept = load_cifar10(tmp_path / "data", source)
    np.testing.assert_array_equal(kept["train"].images, decoded["train"].images)
    assert "Recorded the fingerprint" in caplog.text
    with np.load(cache) as stored:
        assert "fingerprint" in stored.files
    load_cifar10(tmp_path / "data", source)  # and from now on it is an ordinary cache


@pytest.mark.parametrize("packed", [False, True], ids=["directory", "tar.gz"])
def test_cache_without_fingerprint_older_than_its_source_is_rebuilt(editable_folder, tmp_path, caplog, packed):
    (tmp_path / "data").mkdir()
    cache = tmp_path / "data" / CACHE_NAME
    stale = read_image_folder(editable_folder)
    next((editable_folder / "test" / "ship").iterdir()).unlink()
    source = write_tarball(editable_folder, tmp_path / "cifar.tar.gz") if packed else editable_folder
    write_cache_without_fingerprint(cache, stale, source)
    os.utime(cache, (time.time() - 3600, time.time() - 3600))  # written an hour before the source last changed
    with caplog.at_level(logging.INFO):
        fresh = load_cifar10(tmp_path / "data", source)
    assert len(fresh["test"].labels) == len(stale["test"].labels) - 1
    assert f"The data source {source} changed after the cache {cache} was made" in caplog.text


def test_cache_without_fingerprint_from_an_archive_with_a_nested_copy_is_refused(small_folder, tmp_path):
    folder = Path(shutil.copytree(small_folder, tmp_path / "copy"))
    shutil.copytree(folder / "train", folder / "backup" / "train")
    archive = write_tarball(folder, tmp_path / "cifar.tar.gz")
    (tmp_path / "data").mkdir()
    write_cache_without_fingerprint(tmp_path / "data" / CACHE_NAME, read_image_folder(small_folder), archive)
    with pytest.raises(UserInputError, match="cifar10-synthetic/backup/ \\(30 file\\(s\\), a folder other than"):
        load_cifar10(tmp_path / "data", archive)


def test_a_cache_a_full_disk_cannot_take_is_named_and_not_left_half_written(small_folder, small_disk):
    small_disk.fill()
    with pytest.raises(CannotWrite, match=f"Cannot write {small_disk.path / CACHE_NAME} \\(no space left.*data_dir"):
        load_cifar10(small_disk.path, source=small_folder)
    assert not (small_disk.path / CACHE_NAME).exists() and not list(small_disk.path.glob("*.partial"))
