"""Early stopping as the notebook had it, and the notebook's staged learning rates in one fit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveInt
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason
from torch import Tensor

from src.optim import restart_lr_schedule

log = logging.getLogger(__name__)

Hook = Callable[[pl.Trainer, pl.LightningModule], None]


class StagedEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping, plus two things the notebook needs.

    ``keras_patience``: Keras 2.0.x checked ``wait >= patience`` *before* counting the
    current epoch, so ``patience=5`` stopped after 6 epochs without improvement; Lightning
    stops after 5. With this flag ``patience`` means what it meant in the notebook.

    ``lr_stages`` > 1: when patience runs out and stages remain, go back to the best weights,
    multiply the learning rate by ``lr_factor``, start the optimizer afresh (as Keras'
    recompile did) and go on; stop when the last stage runs out of patience. This is the
    notebook's Adam 1e-3 → 1e-4 → 1e-5 schedule inside a single ``fit``.
    """

    def __init__(
        self,
        *args: Any,
        patience: NonNegativeInt = 3,
        keras_patience: bool = False,
        lr_stages: PositiveInt = 1,
        lr_factor: OpenUnitInterval = 0.1,
        **kwargs: Any,
    ) -> None:
        # plain numbers: the parsed constrained types would not load from a weights-only checkpoint
        super().__init__(*args, patience=int(patience), **kwargs)
        self.keras_patience = keras_patience
        self.lr_stages, self.lr_factor = int(lr_stages), float(lr_factor)
        self.stage = 1
        self._trainer: pl.Trainer | None = None
        self._best_weights: dict[str, Tensor] | None = None

    @property
    def effective_patience(self) -> int:
        """Epochs without improvement before stopping, in Lightning's count."""
        return self.patience + 1 if self.keras_patience else self.patience

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer = trainer

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # resumed from the checkpoint of the epoch that stopped the run (e.g. cut off in the final
        # test): it stays stopped instead of training one more epoch
        if self.stopped_epoch > 0:
            trainer.should_stop = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._staged_check(trainer, pl_module, super().on_validation_end)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._staged_check(trainer, pl_module, super().on_train_epoch_end)

    def _staged_check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, hook: Hook) -> None:
        """Lightning's check (in whichever of the two hooks it runs) with the notebook's patience; the
        best weights kept while stages remain, and a stop for lack of patience turned into the next stage."""
        before = trainer.should_stop, self.stopped_epoch, self.stopping_reason_message
        best_score = self.best_score
        patience, self.patience = self.patience, self.effective_patience
        try:
            hook(trainer, pl_module)
        finally:
            self.patience = patience
        if self.lr_stages > 1 and self.best_score is not best_score:  # improved: Lightning keeps the new best
            self._best_weights = {k: v.detach().clone() for k, v in trainer.lightning_module.state_dict().items()}
        if self.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED and self.stage < self.lr_stages:
            trainer.should_stop, self.stopped_epoch, self.stopping_reason_message = before  # not a stop: a new stage
            self._next_stage()

    def _next_stage(self) -> str:
        trainer = self._trainer
        if self._best_weights is not None:
            trainer.lightning_module.load_state_dict(self._best_weights)
        for config in trainer.lr_scheduler_configs:  # each optimizer with its decay schedule
            schedule = config.scheduler
            restart_lr_schedule(schedule.optimizer, schedule, [lr * self.lr_factor for lr in schedule.base_lrs])
        self.stage += 1
        self.wait_count = 0
        self.stopping_reason = EarlyStoppingReason.NOT_STOPPED
        message = (
            f"{self.monitor} did not improve for {self.effective_patience} epochs: learning-rate stage {self.stage}/"
            f"{self.lr_stages} from the best weights ({self.monitor}={float(self.best_score):.4f}), "
            f"lr x{self.lr_factor} -> {trainer.optimizers[0].param_groups[0]['lr']:.3g}, fresh optimizer state."
        )
        log.info(message)
        return message

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stage": self.stage, "best_weights": self._best_weights}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.stage = state_dict.get("stage", 1)
        self._best_weights = state_dict.get("best_weights")
