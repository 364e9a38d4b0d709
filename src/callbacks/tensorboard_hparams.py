"""TensorBoard's HPARAMS tab: each run's hyperparameters beside its final metrics, what the
experiments vary in the first columns."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.plugins.hparams.api_pb2 import DataType, HParamInfo
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.utils.tensorboard.summary import hparams

from src.callbacks.run_results import RunResults
from src.compat import event_file_writer
from src.results import MACHINE_HPARAMS, RunRecord

TEST_METRICS = ("test_acc", "test_loss")
METRICS_SHOWN = ("test_acc", "best_val_acc", "test_loss", "best_epoch", "epochs")  # TensorBoard ticks the first 5
# What the experiments vary, in the order of the table's first columns, with TensorBoard's type.
LEADING = {
    "optimizer": DataType.DATA_TYPE_STRING, "lr": DataType.DATA_TYPE_FLOAT64, "decay": DataType.DATA_TYPE_FLOAT64,
    "momentum": DataType.DATA_TYPE_FLOAT64, "nesterov": DataType.DATA_TYPE_BOOL, "loss": DataType.DATA_TYPE_STRING,
    "seed": DataType.DATA_TYPE_FLOAT64,
}


class TensorBoardHparams(pl.Callback):
    """Logs what :class:`RunResults` recorded (hyperparameters, config, stop_reason) with the
    run's final metrics, so the HPARAMS tab compares runs side by side.

    TensorBoard reads only the first hparams summary of a run, so it is written once, when fit
    ends (at ``teardown``, after every ``on_fit_end`` has updated the record), declaring the
    test metrics too: NaN until the test after fit logs their values. A fit that was
    interrupted or failed writes none; its resumed run will. The metrics go under ``hp/`` so
    that ``test_acc`` and ``test_loss`` keep one value each in the Scalars tab.

    TensorBoard (2.15 on) sorts the table's columns by name, those it marks as differing first,
    and ticks the first five; the columns of :data:`LEADING` get names that sort first
    (``1 optimizer``, ``2 lr``, …) and show their plain names. It also takes the columns of
    every run from one run's declaration, so each run declares all of :data:`LEADING`, even
    those its optimizer lacks.
    """

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        record = next((cb.record for cb in trainer.callbacks if isinstance(cb, RunResults)), None)
        if not record or not isinstance(trainer.logger, TensorBoardLogger) or not trainer.is_global_zero:
            return
        values = {name: getattr(record, name) for name in METRICS_SHOWN}  # RunRecord attributes, logged as hp/<name>
        if stage == "fit" and record.stop_reason not in ("interrupted", "failed"):
            metrics = {f"hp/{k}": math.nan if values[k] is None else values[k] for k in METRICS_SHOWN}
            trainer.logger.log_metrics(metrics, step=0)
            writer = event_file_writer(trainer.logger.experiment)
            for summary in _hparams_summaries(columns(record), metrics):
                writer.add_summary(summary)
        elif stage == "test":
            trainer.logger.log_metrics({f"hp/{k}": values[k] for k in TEST_METRICS if values[k] is not None})


def columns(record: RunRecord) -> dict[str, Any]:
    """The run's HPARAMS row: optimizer arguments beside the other hyperparameters, the machine's
    (:data:`~src.results.MACHINE_HPARAMS`) left out."""
    flat = {"config": record.config, "stop_reason": record.stop_reason}
    for key, value in {**record.hparams, **record.hparams.get("optimizer_args", {})}.items():
        if key not in MACHINE_HPARAMS and key != "optimizer_args" and value is not None:
            flat[key] = str(value) if isinstance(value, (list, tuple)) else value
    return flat


def column_name(key: str) -> str:
    """``2 lr`` for the second leading column; other names sort after those as they are."""
    return f"{list(LEADING).index(key) + 1} {key}" if key in LEADING else key


def _hparams_summaries(row: dict[str, Any], metrics: dict[str, float]) -> tuple[Any, ...]:
    """torch's three hparams summaries, the experiment declaring every leading column, all
    columns in name order (TensorBoard before 2.15 shows them in declared order) and each by
    its plain name."""
    experiment, start, end = hparams({column_name(k): v for k, v in row.items()}, metrics)
    plugin_data = experiment.value[0].metadata.plugin_data
    declared = HParamsPluginData.FromString(plugin_data.content)
    infos = {info.name: info for info in declared.experiment.hparam_infos}
    for key, kind in LEADING.items():
        infos.setdefault(column_name(key), HParamInfo(name=column_name(key), type=kind))
    del declared.experiment.hparam_infos[:]
    for name in sorted(infos):
        infos[name].display_name = name.split(" ", 1)[-1]
        declared.experiment.hparam_infos.append(infos[name])
    plugin_data.content = declared.SerializeToString()
    return experiment, start, end
