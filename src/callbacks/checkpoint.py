"""Checkpoint names that count epochs from 1, as results.json, the history and Keras do."""

from __future__ import annotations

from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor


class OneBasedCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint whose ``{epoch}`` is the epoch's number counted from 1:
    ``best-epoch005-…`` is the fifth epoch, the one results.json calls epoch 5.

    Its state key is Lightning's own, so checkpoints written by either class resume and
    start new stages alike.
    """

    def format_checkpoint_name(
        self, metrics: dict[str, Tensor], filename: str | None = None, ver: int | None = None, prefix: str | None = None
    ) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename, ver, prefix)

    @property
    def state_key(self) -> str:
        return ModelCheckpoint.__qualname__ + super().state_key.removeprefix(type(self).__qualname__)
