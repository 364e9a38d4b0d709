"""CIFAR-10 as a LightningDataModule: the notebook's inputs, an honest validation split."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch import Tensor

from src.compat import batches_done, limited_batches
from src.data.batches import Augmentation, TensorBatches, augment, to_float_nchw
from src.data.sources import load_cifar10
from src.data.splits import CLASSES, Split
from src.errors import UserInputError

log = logging.getLogger(__name__)


def stratified_holdout(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A boolean mask choosing ``size`` samples, each class in proportion to its share."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / len(labels)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(quota - exact)[: size - quota.sum()]] += 1  # largest remainders first
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for cls, take in zip(classes, quota):
        members = np.flatnonzero(labels == cls)
        mask[rng.choice(members, size=take, replace=False)] = True
    return mask


def class_round_robin(labels: np.ndarray) -> np.ndarray:
    """The indices that deal a split out class by class: the first image of each class, in class
    order, then the second of each, and so on; within a class the stored order is kept.

    Evaluation iterates in this order so that the batches a shortened evaluation
    (``--trainer.limit_val_batches``) covers hold every class in equal shares, whatever order the
    source stored them in: an image folder is read class by class, torchvision's copy interleaved.
    A round-robin rather than a seeded permutation: its prefixes are stratified exactly, not only
    on average, and it draws no random numbers, so the training's random stream stays as it was.
    """
    turn = np.empty(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        members = labels == cls
        turn[members] = np.arange(members.sum())
    return np.lexsort((labels, turn))  # by turn, then by class


class CIFAR10DataModule(pl.LightningDataModule):
    """CIFAR-10 scaled to [0, 1] (no mean/std, as the notebook), served from memory.

    Args:
        data_dir: writable directory for the decoded cache (and torchvision's download).
        source: an image-folder copy of CIFAR-10, a directory or ``.tar.gz`` holding
            ``train/<class>/*`` and ``test/<class>/*``; decoded once into ``data_dir``.
        download: let torchvision download CIFAR-10 when no copy is found.
        batch_size: training batch size (the notebook's 32).
        eval_batch_size: batch size for validation and test; any size gives the same numbers.
            Both iterate their images in :func:`class_round_robin` order, so any number of
            batches holds every class.
        val_split: training images held out (stratified, seeded by ``split_seed``) for
            validation and early stopping. ``0`` is the notebook's protocol: validate on
            the test set.
        split_seed: seed of the hold-out, fixed apart from the training seed so that
            seeds vary the training, not the data.
        augment: per-batch training augmentation, ``none`` as in the notebook.
    """

    def __init__(
        self,
        data_dir: str = "data",
        source: str | None = None,
        download: bool = True,
        batch_size: PositiveInt = 32,
        eval_batch_size: PositiveInt = 1000,
        val_split: NonNegativeInt = 5000,
        split_seed: int = 0,
        augment: Augmentation = "none",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self._given: dict[str, Split] | None = None

    @classmethod
    def from_arrays(cls, train: Split, test: Split, **kwargs: Any) -> CIFAR10DataModule:
        """A data module over images already in memory (benchmarks, notebooks), same batches and split."""
        datamodule = cls(**kwargs)
        datamodule._given = {"train": train, "test": test}
        return datamodule

    def prepare_data(self) -> None:
        if self._given is None and not self.splits:  # the CLI loads the data before the trainer starts
            load_cifar10(self.hparams.data_dir, self.hparams.source, self.hparams.download)

    def setup(self, stage: str) -> None:
        if self.splits:
            return
        data = self._given or load_cifar10(self.hparams.data_dir, self.hparams.source, download=False)
        _check_training_size(len(data["train"].labels), self.hparams.val_split, self.hparams.batch_size)
        splits = _train_val_test(data["train"], data["test"], self.hparams.val_split, self.hparams.split_seed)
        self.splits = {name: _as_tensors(split) for name, split in splits.items()}

    def summary(self) -> dict[str, Any]:
        """Where the images came from and how many each split holds, for the run's record."""
        source = self.hparams.source
        return {
            "source": "in-memory arrays" if self._given is not None else (str(source) if source else "torchvision"),
            **{f"{name}_images": len(labels) for name, (_, labels) in self.splits.items()},
            "validates_on_test": self.hparams.val_split == 0,
        }

    def evaluated_images(self, split: str, trainer: pl.Trainer) -> int:
        """How many of the ``val`` or ``test`` images ``trainer`` evaluates, all ranks together: each
        rank cuts its batches to ``trainer.limit_{split}_batches`` as Lightning does, and like
        Lightning this refuses a fraction that leaves no batch (``MisconfigurationException``)."""
        images, labels = self.splits[split]
        limit = getattr(trainer, f"limit_{split}_batches")
        return _images_in_shards(images, labels, self.hparams.eval_batch_size, trainer.world_size, split, limit)

    def _batches(self, split: str, shuffle: bool) -> TensorBatches:
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        if device.type != "cpu":  # keep the data where the model is: slicing replaces copying
            self.splits[split] = tuple(t.to(device) for t in self.splits[split])
        images, labels = self.splits[split]
        return TensorBatches(
            images, labels, self.hparams.batch_size if shuffle else self.hparams.eval_batch_size, shuffle,
            seed=torch.initial_seed(),
            epoch=lambda: self.trainer.current_epoch if self.trainer else 0,
            batches_done=lambda: batches_done(self.trainer),
            rank=self.trainer.global_rank if self.trainer else 0,
            world_size=self.trainer.world_size if self.trainer else 1,
        )

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, Tensor):  # the model summary's float example input
            return batch
        images, labels = batch
        images = to_float_nchw(images)
        if self.trainer is not None and self.trainer.training:
            images = augment(images, self.hparams.augment)
        return images, labels


def _train_val_test(train: Split, test: Split, val_split: int, split_seed: int) -> dict[str, Split]:
    """The three splits: ``val_split`` training images held out for validation (none: the test set
    validates, as in the notebook), validation and test dealt out by class."""
    test = _dealt_by_class(test)
    if val_split == 0:
        log.warning(
            "data.val_split=0: validating on the TEST set, as the notebook did. val_acc is then "
            "test accuracy and early stopping selects on the test set; use a hold-out to avoid that."
        )
        return {"train": train, "val": test, "test": test}
    held_out = stratified_holdout(train.labels, val_split, split_seed)
    _check_every_class_trains(train.labels, held_out, val_split)
    return {
        "train": Split(train.images[~held_out], train.labels[~held_out]),
        "val": _dealt_by_class(Split(train.images[held_out], train.labels[held_out])),
        "test": test,
    }


def _images_in_shards(
    images: Tensor, labels: Tensor, batch_size: int, world_size: int, split: str, limit: int | float
) -> int:
    """The images that ``world_size`` ranks evaluate together, each cutting its shard to ``limit`` batches."""
    evaluated = 0
    for rank in range(world_size):
        shard = TensorBatches(images, labels, batch_size, shuffle=False, rank=rank, world_size=world_size)
        evaluated += shard.images_in(limited_batches(split, len(shard), limit))
    return evaluated


def _check_training_size(images: int, val_split: int, batch_size: int) -> None:
    left = max(images - val_split, 0)
    if left < batch_size:
        raise UserInputError(
            f"data.val_split={val_split} leaves {left} of the {images} training images, fewer than one batch "
            f"(data.batch_size={batch_size}). Hold out at most {max(images - batch_size, 0)} images "
            "(default 5000), or lower data.batch_size."
        )


def _check_every_class_trains(labels: np.ndarray, held_out: np.ndarray, val_split: int) -> None:
    """A class held out entirely could be validated but never learned."""
    counts = np.bincount(labels, minlength=len(CLASSES))
    left = np.bincount(labels[~held_out], minlength=len(CLASSES))
    gone = [f"{CLASSES[c]} (all {counts[c]})" for c in np.flatnonzero((counts > 0) & (left == 0))]
    if gone:
        raise UserInputError(
            f"data.val_split={val_split} holds out every training image of {', '.join(gone)}, leaving nothing "
            "of that class to train on (the hold-out takes each class in proportion). Choose a smaller "
            "data.val_split."
        )


def _dealt_by_class(split: Split) -> Split:
    order = class_round_robin(split.labels)
    return Split(split.images[order], split.labels[order])


def _as_tensors(split: Split) -> tuple[Tensor, Tensor]:
    return torch.from_numpy(np.ascontiguousarray(split.images)), torch.from_numpy(split.labels)
