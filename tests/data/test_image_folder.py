"""An image-folder copy: decoded in class order from a directory or an archive, its layout checked by
name before any image is decoded."""

import shutil

import numpy as np
import pytest
from PIL import Image

from src.data.image_folder import read_image_folder
from src.data.sources import load_cifar10
from src.errors import UserInputError
from tests.synthetic import synthetic_images, write_image_folder, write_tarball


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


def test_truncated_archive_is_named_instead_of_an_eof_error(small_folder, tmp_path, forbid_decoding):
    whole = write_tarball(small_folder, tmp_path / "cifar.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    forbid_decoding()  # found while listing, before decoding
    with pytest.raises(UserInputError, match="cut.tar.gz is truncated or corrupt \\(EOFError"):
        read_image_folder(tmp_path / "cut.tar.gz")


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
    editable_folder, tmp_path, forbid_decoding, stray, named, packed
):
    copied = editable_folder / stray
    copied.parent.mkdir(parents=True, exist_ok=True)
    dogs = sorted((editable_folder / "train" / "dog").iterdir())
    for dog, target in zip(dogs, [copied, copied.with_name("0001.png")][: 2 if "/ (2" in named else 1]):
        shutil.copy(dog, target)  # in a nested cat folder, the old reader trained them as cats
    source = write_tarball(editable_folder, tmp_path / "cifar.tar.gz") if packed else editable_folder
    within = "cifar10-synthetic/" if packed else ""
    forbid_decoding()
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
