"""Stop a run whose loss has become NaN or infinite, and say so, instead of training on garbage."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse.typing import PositiveInt

log = logging.getLogger(__name__)


class DivergenceGuard(pl.Callback):
    """Checks the training loss every ``check_every_n_steps`` steps.

    Checking needs the loss on the host; doing it every few steps instead of every step
    keeps GPU training free of per-step synchronisation. A diverged loss stays non-finite,
    so the run still stops within a few steps of it.
    """

    def __init__(self, check_every_n_steps: PositiveInt = 10) -> None:
        self.check_every_n_steps = check_every_n_steps
        self.diverged_at_step: int | None = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx > 0 and trainer.global_step % self.check_every_n_steps:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not bool(torch.isfinite(trainer.strategy.reduce(loss.detach(), reduce_op="sum"))):
            self.diverged_at_step = trainer.global_step
            trainer.should_stop = True
            log.error(
                "Training diverged: the loss is %s at step %d (epoch %d). The run stops here and is "
                "recorded as 'diverged'; lower the learning rate or add decay.",
                loss.item(), trainer.global_step, trainer.current_epoch + 1,
            )


def has_diverged(trainer: pl.Trainer) -> bool:
    """Whether this trainer's run was stopped by a :class:`DivergenceGuard`."""
    return any(isinstance(cb, DivergenceGuard) and cb.diverged_at_step is not None for cb in trainer.callbacks)
