"""TensorBoard's HPARAMS tab: each run's hyperparameters beside its final metrics."""

from __future__ import annotations

import math

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from src.callbacks.run_results import RunResults

# RunRecord attributes, logged as hp/<name>
FIT_METRICS = ("best_val_acc", "best_epoch", "epochs")
TEST_METRICS = ("test_acc", "test_loss")


class TensorBoardHparams(pl.Callback):
    """Logs what :class:`RunResults` recorded (hyperparameters, config, stop_reason) with the
    run's final metrics through ``log_hyperparams(params, metrics)``, so the HPARAMS tab
    compares runs side by side.

    TensorBoard reads only the first hparams summary of a run, so it is written once, when fit
    ends (at ``teardown``, after every ``on_fit_end`` has updated the record), declaring the
    test metrics too: NaN until the test after fit logs their values. A fit that was
    interrupted or failed writes none; its resumed run will. The metrics go under ``hp/`` so
    that ``test_acc`` and ``test_loss`` keep one value each in the Scalars tab.
    """

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        record = next((cb.record for cb in trainer.callbacks if isinstance(cb, RunResults)), None)
        if not record or not isinstance(trainer.logger, TensorBoardLogger):
            return
        values = {name: getattr(record, name) for name in FIT_METRICS + TEST_METRICS}
        if stage == "fit" and record.stop_reason not in ("interrupted", "failed"):
            params = {"config": record.config, "stop_reason": record.stop_reason, **record.hparams}
            metrics = {f"hp/{k}": math.nan if values[k] is None else values[k] for k in FIT_METRICS + TEST_METRICS}
            trainer.logger.log_hyperparams(params, metrics)
        elif stage == "test":
            trainer.logger.log_metrics({f"hp/{k}": values[k] for k in TEST_METRICS if values[k] is not None})
