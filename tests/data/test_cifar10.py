import logging
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from src.data import cifar10
from src.data.batches import TensorBatches
from src.data.cifar10 import CIFAR10DataModule, class_round_robin, stratified_holdout
from src.data.sources import load_cifar10
from src.errors import UserInputError
from src.module import CifarClassifier


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


def test_class_round_robin_deals_one_image_of_each_class_in_turn_keeping_their_order():
    labels = np.array([0, 0, 0, 1, 1, 2])  # stored class by class, as an image folder is read
    assert class_round_robin(labels).tolist() == [0, 3, 5, 1, 4, 2]
    interleaved = np.array([2, 1, 0, 1, 0, 0])  # the same classes stored otherwise: the same rule
    assert interleaved[class_round_robin(interleaved)].tolist() == [0, 1, 2, 0, 1, 0]
    assert class_round_robin(interleaved).tolist() == [2, 1, 0, 4, 3, 5]


def evaluate(dm, model, limit_test_batches=1.0):
    """The val and test metrics a Lightning trainer reports for ``model``, and the test labels it saw."""
    seen = []

    class Seen(pl.Callback):
        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            seen.append(batch[1])

    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Seen()], limit_test_batches=limit_test_batches)
    (val,) = trainer.validate(model, datamodule=dm, verbose=False)
    (test,) = trainer.test(model, datamodule=dm, verbose=False)
    return {**val, **test}, torch.cat(seen), trainer


def test_a_fifth_of_the_test_set_holds_every_class_of_a_source_stored_class_by_class(datamodule):
    dm = datamodule(val_split=100, eval_batch_size=10)  # the test set: 10 batches of 10
    _, seen, trainer = evaluate(dm, CifarClassifier(), limit_test_batches=0.2)
    assert torch.bincount(seen, minlength=10).tolist() == [2] * 10
    assert dm.evaluated_images("test", trainer) == len(seen) == 20


def test_full_set_metrics_are_those_of_the_stored_order(datamodule, monkeypatch):
    torch.manual_seed(2)  # an untrained model that still tells some classes apart
    model = CifarClassifier()
    dealt = datamodule(val_split=100, eval_batch_size=30)
    monkeypatch.setattr(cifar10, "class_round_robin", lambda labels: np.arange(len(labels)))
    stored = datamodule(val_split=100, eval_batch_size=30)  # the order of the code before the round-robin
    for split in ("val", "test"):
        assert not torch.equal(dealt.splits[split][1], stored.splits[split][1])
    (new, _, _), (old, _, _) = evaluate(dealt, model), evaluate(stored, model)
    assert 0 < new["test_acc"] < 1
    assert (new["val_acc"], new["test_acc"]) == (old["val_acc"], old["test_acc"])
    assert new["val_loss"] == pytest.approx(old["val_loss"]) and new["test_loss"] == pytest.approx(old["test_loss"])


def test_ranks_first_batches_together_hold_every_class(datamodule):
    dm = datamodule(val_split=100, eval_batch_size=5)
    images, labels = dm.splits["test"]
    shards = [TensorBatches(images, labels, 5, shuffle=False, rank=r, world_size=2) for r in range(2)]
    first = torch.cat([next(iter(shard))[1] for shard in shards])
    assert torch.bincount(first, minlength=10).tolist() == [1] * 10
    ranks = SimpleNamespace(world_size=2, limit_test_batches=1)
    assert dm.evaluated_images("test", ranks) == len(first)


def test_training_batches_and_hold_out_are_those_of_the_seed_as_before(datamodule, image_folder, data_dir):
    dm = datamodule(val_split=100, batch_size=32)
    stored = load_cifar10(data_dir, image_folder)["train"]
    held_out = stratified_holdout(stored.labels, 100, seed=0)
    torch.manual_seed(42)
    batches = dm.train_dataloader()  # seeded by the run's seed and the epoch
    order = torch.randperm(500, generator=torch.Generator().manual_seed(42 + 0))
    expected = torch.from_numpy(stored.images[~held_out])[order]
    assert torch.equal(torch.cat([images for images, _ in batches]), expected)
    val_images = dm.splits["val"][0].numpy()
    assert sorted(map(bytes, val_images.reshape(100, -1))) == sorted(map(bytes, stored.images[held_out].reshape(100, -1)))
