"""The small image folders the data tests read, and a guard that no image is decoded."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from src.data import image_folder
from tests.synthetic import write_image_folder


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("folder"), train_per_class=3, test_per_class=2)


@pytest.fixture
def editable_folder(small_folder, tmp_path):
    return Path(shutil.copytree(small_folder, tmp_path / "copy"))


@pytest.fixture
def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it, and from then on decoding any image fails the test."""

    def forbid() -> None:
        monkeypatch.setattr(image_folder, "_decode", lambda source, name, data: pytest.fail(f"{name} was decoded"))

    return forbid
