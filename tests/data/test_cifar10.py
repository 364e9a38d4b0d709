import logging

import numpy as np
import pytest
import torch

from src.data.cifar10 import CIFAR10DataModule, stratified_holdout
from src.errors import UserInputError


@pytest.fixture
def datamodule(image_folder, data_dir):
    def make(**kwargs):
        dm = CIFAR10DataModule(data_dir=str(data_dir), source=str(image_folder), **kwargs)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    return make


def test_holdout_is_stratified_seeded_and_exact():
    labels = np.repeat(np.arange(10), 500)
    mask = stratified_holdout(labels, 500, seed=0)
    assert mask.sum() == 500
    assert np.bincount(labels[mask]).tolist() == [50] * 10
    np.testing.assert_array_equal(mask, stratified_holdout(labels, 500, seed=0))
    assert not np.array_equal(mask, stratified_holdout(labels, 500, seed=1))


def test_holdout_of_uneven_size_keeps_total():
    labels = np.repeat(np.arange(10), [7, 3, 5, 5, 5, 5, 5, 5, 5, 5])
    assert stratified_holdout(labels, 13, seed=0).sum() == 13


def test_validation_is_held_out_from_training(datamodule):
    dm = datamodule(val_split=100)
    train_images, _ = dm.splits["train"]
    val_images, val_labels = dm.splits["val"]
    assert len(train_images) == 500 and len(val_images) == 100
    assert torch.bincount(val_labels).tolist() == [10] * 10
    train_rows = {bytes(row) for row in train_images.reshape(len(train_images), -1).numpy()}
    assert not any(bytes(row) in train_rows for row in val_images.reshape(len(val_images), -1).numpy())


def test_val_split_zero_validates_on_the_test_set_and_says_so(datamodule, caplog):
    with caplog.at_level(logging.WARNING):
        dm = datamodule(val_split=0)
    assert torch.equal(dm.splits["val"][0], dm.splits["test"][0])
    assert len(dm.splits["train"][0]) == 600
    assert "validating on the TEST set" in caplog.text


@pytest.mark.parametrize(
    "val_split, message",
    [
        (600, "data.val_split=600 leaves 0 of the 600 training images, fewer than one batch"),
        (580, "data.val_split=580 leaves 20 of the 600 training images, fewer than one batch .* at most 568"),
    ],
)
def test_a_hold_out_that_leaves_less_than_a_batch_is_refused_with_the_numbers(datamodule, val_split, message):
    with pytest.raises(UserInputError, match=message):
        datamodule(val_split=val_split, batch_size=32)


def test_a_hold_out_that_takes_a_whole_class_is_refused_naming_it(datamodule):
    # 595 of 60 per class: half the classes give all 60 images to validation
    with pytest.raises(UserInputError, match=r"holds out every training image of airplane \(all 60\), automobile"):
        datamodule(val_split=595, batch_size=1)


def test_batches_are_scaled_to_unit_range_without_normalisation(datamodule):
    dm = datamodule(val_split=100)
    raw_images, raw_labels = next(iter(dm.val_dataloader()))
    images, labels = dm.on_after_batch_transfer((raw_images, raw_labels), 0)
    assert images.shape == (100, 3, 32, 32) and images.dtype == torch.float32
    assert torch.equal(images * 255, raw_images.permute(0, 3, 1, 2).float())
    assert images.is_contiguous(memory_format=torch.channels_last)


def test_training_order_is_reshuffled_every_epoch_and_repeatable(datamodule):
    dm = datamodule(val_split=100, batch_size=32)
    epoch = {"value": 0}
    batches = dm.train_dataloader()
    batches.epoch = lambda: epoch["value"]

    def labels_in_order():
        return torch.cat([labels for _, labels in batches])

    first = labels_in_order()
    assert len(batches) == 16 and len(first) == 500  # 15 full batches and one of 20
    epoch["value"] = 1
    second = labels_in_order()
    assert not torch.equal(first, second)
    assert sorted(first.tolist()) == sorted(second.tolist())
    epoch["value"] = 0
    assert torch.equal(labels_in_order(), first)
