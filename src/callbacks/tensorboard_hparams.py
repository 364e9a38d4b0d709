"""TensorBoard's HPARAMS tab: each run's hyperparameters beside its final metrics."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from src.callbacks.run_results import RunResults

FINAL_METRICS = ("best_val_acc", "best_epoch", "epochs", "test_acc", "test_loss")


class TensorBoardHparams(pl.Callback):
    """Logs what :class:`RunResults` recorded (hyperparameters, how the run ended, its final
    metrics) with ``log_hyperparams(params, metrics)`` after fit and again after the test, so
    the HPARAMS tab compares runs side by side.

    Runs at ``teardown``, after every ``on_*_end`` hook has updated the record. The metrics go
    under ``hp/`` so that ``test_acc`` and ``test_loss`` keep one value each in the Scalars tab.
    """

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        record = next((cb.record for cb in trainer.callbacks if isinstance(cb, RunResults)), None)
        if not record or not isinstance(trainer.logger, TensorBoardLogger):
            return
        params = {
            "config": record["config"],
            "stop_reason": record.get("stop_reason"),
            **{k: v for k, v in record["hparams"].items() if not k.startswith("_")},
        }
        metrics = {f"hp/{k}": record[k] for k in FINAL_METRICS if record.get(k) is not None}
        if metrics:
            trainer.logger.log_hyperparams(params, metrics)
