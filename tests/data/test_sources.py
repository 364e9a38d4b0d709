import logging
import os
import shutil
import time
import urllib.request
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from PIL import Image

from src.data import sources
from src.data.sources import CACHE_NAME, CLASSES, load_cifar10, read_image_folder
from src.errors import CannotWrite, UserInputError
from tests.synthetic import synthetic_images, write_image_folder, write_tarball


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("folder"), train_per_class=3, test_per_class=2)


@pytest.fixture
def editable_folder(small_folder, tmp_path):
    return Path(shutil.copytree(small_folder, tmp_path / "copy"))


@pytest.mark.parametrize("packed", [False, True], ids=["directory", "tar.gz"])
def test_image_folder_gives_images_and_labels_in_class_order(small_folder, tmp_path, packed):
    source = write_tarball(small_folder, tmp_path / "cifar.tar.gz") if packed else small_folder
    splits = read_image_folder(source)
    for split, per_class, seed in (("train", 3, 0), ("test", 2, 1)):
        images, labels = synthetic_images(per_class, seed)
        assert splits[split].images.shape == (10 * per_class, 32, 32, 3)
        assert splits[split].images.dtype == np.uint8
        np.testing.assert_array_equal(splits[split].labels, labels)
        np.testing.assert_array_equal(splits[split].images, images)  # PNG is lossless


def test_jpeg_images_are_decoded_too(tmp_path):
    folder = write_image_folder(tmp_path / "jpg", train_per_class=1, test_per_class=1, fmt="jpg")
    splits = read_image_folder(folder)
    images, _ = synthetic_images(1, 0)
    decoded_means = splits["train"].images.reshape(10, -1, 3).mean(axis=1)
    np.testing.assert_allclose(decoded_means, images.reshape(10, -1, 3).mean(axis=1), atol=4)  # lossy, but close


def forbid_decoding(monkeypatch):
    """From now on, decoding any image fails the test."""
    monkeypatch.setattr(sources, "_decode", lambda source, name, data: pytest.fail(f"{name} was decoded"))


def test_cache_is_written_once_and_reused_while_the_source_is_unchanged(editable_folder, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    first = load_cifar10(data_dir, editable_folder)
    assert (data_dir / CACHE_NAME).is_file()
    (editable_folder / "README.md").write_text("notes beside the images change nothing")
    forbid_decoding(monkeypatch)
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


def test_missing_class_is_named(editable_folder):
    shutil.rmtree(editable_folder / "test" / "frog")
    with pytest.raises(UserInputError, match="no 'test' images for class\\(es\\) frog"):
        read_image_folder(editable_folder)


def test_unknown_class_folder_is_named(editable_folder):
    shutil.copytree(editable_folder / "train" / "cat", editable_folder / "train" / "kitten")
    with pytest.raises(UserInputError, match="unknown class folder\\(s\\) kitten"):
        read_image_folder(editable_folder)


def test_non_image_file_is_named(editable_folder):
    (editable_folder / "train" / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(UserInputError, match="train/dog/notes.txt .* is not a readable image"):
        read_image_folder(editable_folder)


def test_wrong_image_size_is_named(editable_folder):
    Image.new("RGB", (64, 48)).save(editable_folder / "test" / "ship" / "big.png")
    with pytest.raises(UserInputError, match="test/ship/big.png .* is 64x48 pixels"):
        read_image_folder(editable_folder)


def test_source_that_is_neither_folder_nor_archive(tmp_path):
    (tmp_path / "cifar.zip").write_bytes(b"PK")
    with pytest.raises(UserInputError, match="neither a directory nor a .tar"):
        read_image_folder(tmp_path / "cifar.zip")


def test_truncated_archive_is_named_instead_of_an_eof_error(small_folder, tmp_path, monkeypatch):
    whole = write_tarball(small_folder, tmp_path / "cifar.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    forbid_decoding(monkeypatch)  # found while listing, before decoding
    with pytest.raises(UserInputError, match="cut.tar.gz is truncated or corrupt \\(EOFError"):
        read_image_folder(tmp_path / "cut.tar.gz")


def test_missing_source_is_not_found(tmp_path):
    with pytest.raises(UserInputError, match="nothere.tar.gz was not found"):
        load_cifar10(tmp_path / "data", tmp_path / "nothere.tar.gz")


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


def test_no_data_and_no_network_says_where_to_put_data_and_leaves_no_empty_folder(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserInputError, match="--data.source"):
        load_cifar10(tmp_path / "new" / "data")
    assert list(tmp_path.iterdir()) == []  # no empty data/ (nor the folder above it) left behind


def test_a_failed_load_keeps_a_data_dir_that_was_there(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(UserInputError, match="nothere.tar.gz was not found"):
        load_cifar10(tmp_path / "data", tmp_path / "nothere.tar.gz")
    assert (tmp_path / "data").is_dir()


def test_classes_are_in_official_label_order():
    assert list(CLASSES) == sorted(CLASSES)
    assert CLASSES[0] == "airplane" and CLASSES[9] == "truck"


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
    small_folder, tmp_path, monkeypatch, caplog, packed
):
    source = write_tarball(small_folder, tmp_path / "cifar.tar.gz") if packed else small_folder
    (tmp_path / "data").mkdir()
    cache = tmp_path / "data" / CACHE_NAME
    decoded = read_image_folder(source)
    write_cache_without_fingerprint(cache, decoded, source)
    forbid_decoding(monkeypatch)
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


@pytest.mark.parametrize(
    "stray, named",  # {w}: where train/ and test/ are, the archive's wrapping folder
    [
        ("backup/train/dog/0000.png", "{w}backup/ (2 file(s), a folder other than train/ and test/)"),
        ("train/cat/extra/0000.png", "{w}train/cat/extra/ (2 file(s), a folder inside class folder {w}train/cat/)"),
        ("train/0000.png", "{w}train/0000.png (a file in {w}train/, outside any class folder)"),
        ("0000.png", "{w}0000.png (an image outside train/ and test/)"),
    ],
)
@pytest.mark.parametrize("packed", [False, True], ids=["directory", "tar.gz"])
def test_images_outside_the_top_class_folders_are_refused_by_name_before_decoding(
    editable_folder, tmp_path, monkeypatch, stray, named, packed
):
    copied = editable_folder / stray
    copied.parent.mkdir(parents=True, exist_ok=True)
    dogs = sorted((editable_folder / "train" / "dog").iterdir())
    for dog, target in zip(dogs, [copied, copied.with_name("0001.png")][: 2 if "/ (2" in named else 1]):
        shutil.copy(dog, target)  # in a nested cat folder, the old reader trained them as cats
    source = write_tarball(editable_folder, tmp_path / "cifar.tar.gz") if packed else editable_folder
    within = "cifar10-synthetic/" if packed else ""
    forbid_decoding(monkeypatch)
    with pytest.raises(UserInputError) as refused:
        load_cifar10(tmp_path / "data", source)
    assert f"{source} holds files outside {within}train/<class>/ and {within}test/<class>/: " in str(refused.value)
    assert named.format(w=within) in str(refused.value)
    assert not (tmp_path / "data").exists()


def test_notes_at_the_top_and_hidden_files_are_left_alone(editable_folder, tmp_path):
    (editable_folder / "README.md").write_text("CIFAR-10, as PNG")
    (editable_folder / "train" / "cat" / ".DS_Store").write_bytes(b"\0")
    (editable_folder / "train" / "cat" / "._0000.png").write_bytes(b"AppleDouble")
    for source in (editable_folder, write_tarball(editable_folder, tmp_path / "cifar.tar.gz")):
        assert len(read_image_folder(source)["train"].labels) == 30


def test_a_folder_holding_one_wrapping_folder_is_read_as_an_unpacked_archive(small_folder, tmp_path):
    shutil.copytree(small_folder, tmp_path / "unpacked" / "cifar10-synthetic")
    np.testing.assert_array_equal(read_image_folder(tmp_path / "unpacked")["train"].images,
                                  read_image_folder(small_folder)["train"].images)
def test_a_cache_a_full_disk_cannot_take_is_named_and_not_left_half_written(small_folder, small_disk):
    small_disk.fill()
    with pytest.raises(CannotWrite, match=f"Cannot write {small_disk.path / CACHE_NAME} \\(no space left.*data_dir"):
        load_cifar10(small_disk.path, source=small_folder)
    assert not (small_disk.path / CACHE_NAME).exists() and not list(small_disk.path.glob("*.partial"))
