"""Where CIFAR-10 comes from: a source that is not there, or no data and no network, is named, and a
failed first load leaves no empty folder behind."""

import urllib.request
from urllib.error import URLError

import pytest

from src.data.sources import load_cifar10
from src.errors import UserInputError


def test_missing_source_is_not_found(tmp_path):
    with pytest.raises(UserInputError, match="nothere.tar.gz was not found"):
        load_cifar10(tmp_path / "data", tmp_path / "nothere.tar.gz")


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
