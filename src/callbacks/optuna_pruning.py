"""A search's trial, from inside its run: ``val_acc`` reported after each epoch, and a stop
once Optuna's pruner finds the trial hopeless."""

from __future__ import annotations

import optuna
import pytorch_lightning as pl

from src.storage import open_storage, storage_url


class OptunaPruning(pl.Callback):
    """Reports ``val_acc`` to a trial after each epoch and stops the run once the pruner finds it
    hopeless. It runs inside the trial's ``src.cli`` process and reaches the trial through the
    study's storage (a URL, or ``env:NAME`` for one kept in an environment variable), so the
    pruner is rebuilt here from the same settings."""

    def __init__(
        self, storage: str, study_name: str, trial_id: int, n_startup_trials: int = 5, n_warmup_steps: int = 0,
    ) -> None:
        self.storage, self.study_name, self.trial_id = storage, study_name, trial_id
        self.pruner = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
        self.trial: optuna.Trial | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            storage = open_storage(storage_url(self.storage))  # no heartbeat: the search's worker keeps it
            study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=self.pruner)
            self.trial = optuna.trial.Trial(study, self.trial_id)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        prune = False
        if self.trial is not None and "val_acc" in trainer.callback_metrics:
            epoch = trainer.current_epoch + 1
            self.trial.report(float(trainer.callback_metrics["val_acc"]), step=epoch)
            prune = self.trial.should_prune()
            if prune:
                self.trial.set_user_attr("pruned_at_epoch", epoch)
        if trainer.strategy.broadcast(prune):
            trainer.should_stop = True
