"""Batches sliced from one in-memory uint8 tensor, and augmentations applied per batch.

The whole of CIFAR-10 is 180 MB as uint8, so it lives in memory (on the GPU when training
there) and an epoch is one permutation plus slicing: no per-image Python, no worker
processes, nothing to copy per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor

Augmentation = Literal["none", "shift_flip", "crop_flip"]


class TensorBatches:
    """An epoch's ``(images, labels)`` batches from in-memory tensors.

    Shuffled batches use a permutation seeded by ``seed`` and the current epoch, so a
    resumed run sees the same order as an uninterrupted one. It is resumable mid-epoch
    (Lightning saves ``state_dict`` in checkpoints): ``batches_done`` reports how many of
    this epoch's batches training has used, and a restored loader skips them. Under DDP each rank takes
    every ``world_size``-th image of the permutation; training drops the remainder so all
    ranks step together, evaluation keeps every image.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        epoch: Callable[[], int] = lambda: 0,
        batches_done: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epoch, self.batches_done = epoch, batches_done
        self.rank, self.world_size = rank, world_size
        self._skip = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch(), "batches_done": self.batches_done()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._skip = state["batches_done"] if state["epoch"] == self.epoch() else 0

    def _order(self) -> Tensor:
        count = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch())
            order = torch.randperm(count, generator=generator)
            order = order[: count - count % self.world_size]
        else:
            order = torch.arange(count)
        return order[self.rank :: self.world_size].to(self.images.device)

    def __len__(self) -> int:
        return -(-self._shard() // self.batch_size)

    def images_in(self, batches: int) -> int:
        """How many images this rank's first ``batches`` batches of an epoch hold."""
        return min(batches * self.batch_size, self._shard())

    def _shard(self) -> int:
        count = len(self.labels)
        return count // self.world_size if self.shuffle else len(range(self.rank, count, self.world_size))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order()
        skip, self._skip = self._skip, 0
        for start in range(skip * self.batch_size, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.images[index], self.labels[index]


def to_float_nchw(images: Tensor) -> Tensor:
    """uint8 NHWC → float NCHW in [0, 1]; the permuted view keeps channels-last memory order."""
    return images.permute(0, 3, 1, 2).float().div_(255)


def augment(images: Tensor, kind: Augmentation) -> Tensor:
    """Random per-image shifts and horizontal flips of a float NCHW batch, in batched ops.

    ``shift_flip`` is the Keras example's ImageDataGenerator (shifts of up to 10%, i.e. 3
    pixels, edges filled with the nearest pixel); ``crop_flip`` is the usual random crop of
    the zero-padded (4 pixels) image. Both flip half the images left to right.
    """
    if kind == "none":
        return images
    count, _, height, width = images.shape
    device = images.device
    if kind == "crop_flip":
        margin, padded = 4, torch.nn.functional.pad(images, [4] * 4)
    else:
        margin = round(0.1 * height)
        padded = torch.nn.functional.pad(images, [margin] * 4, mode="replicate")
    dy = torch.randint(0, 2 * margin + 1, (count, 1, 1), device=device)
    dx = torch.randint(0, 2 * margin + 1, (count, 1, 1), device=device)
    flip = torch.rand(count, 1, 1, device=device) < 0.5
    cols = torch.arange(width, device=device).view(1, 1, -1)
    cols = torch.where(flip, width - 1 - cols, cols) + dx
    rows = torch.arange(height, device=device).view(1, -1, 1) + dy
    batch = torch.arange(count, device=device).view(-1, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
