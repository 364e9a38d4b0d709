import logging
import shutil
import urllib.request
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from PIL import Image

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


def test_cache_is_written_once_and_reused_without_the_source(editable_folder, tmp_path):
    data_dir = tmp_path / "data"
    first = load_cifar10(data_dir, editable_folder)
    assert (data_dir / CACHE_NAME).is_file()
    shutil.rmtree(editable_folder / "train")  # a second load must not read the source again
    again = load_cifar10(data_dir, editable_folder)
    np.testing.assert_array_equal(again["train"].images, first["train"].images)


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


def test_truncated_archive_is_named_instead_of_an_eof_error(small_folder, tmp_path):
    whole = write_tarball(small_folder, tmp_path / "cifar.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserInputError, match="cut.tar.gz is truncated or corrupt: reading stopped after"):
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


def test_no_data_and_no_network_says_where_to_put_data(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserInputError, match="--data.source"):
        load_cifar10(tmp_path / "empty")


def test_classes_are_in_official_label_order():
    assert list(CLASSES) == sorted(CLASSES)
    assert CLASSES[0] == "airplane" and CLASSES[9] == "truck"


def test_a_cache_a_full_disk_cannot_take_is_named_and_not_left_half_written(small_folder, small_disk):
    small_disk.fill()
    with pytest.raises(CannotWrite, match=f"Cannot write {small_disk.path / CACHE_NAME} \\(no space left.*data_dir"):
        load_cifar10(small_disk.path, source=small_folder)
    assert not (small_disk.path / CACHE_NAME).exists() and not list(small_disk.path.glob("*.partial"))
