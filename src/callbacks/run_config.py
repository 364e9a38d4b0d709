"""A run's ``config.yaml``, and its settings in every checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.cli import SaveConfigCallback

from src.files import write_atomic
from src.run_settings import SETTINGS_KEY, experiment_settings


class SaveRunConfig(SaveConfigCallback):
    """LightningCLI's ``config.yaml``, written whole or not at all (a resumed run rewrites it, and a
    full disk must not leave it cut off), and the run's settings in every checkpoint: a resume is
    checked against the checkpoint's copy, which an edit of ``config.yaml`` does not change."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if self.already_saved:
            return
        log_dir = trainer.log_dir  # a collective call: on every rank
        if trainer.is_global_zero and log_dir:
            write_atomic(Path(log_dir) / self.config_filename, self.parser.dump(self.config, skip_unset=False))
        self.already_saved = trainer.strategy.broadcast(True)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[SETTINGS_KEY] = experiment_settings(self.config)
