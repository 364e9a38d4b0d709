"""``results.json``: one machine-readable record per run, so results never live only in prose."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping

from src.callbacks.divergence import has_diverged
from src.errors import CannotWrite, write_failure
from src.results import EPOCH_METRICS, RunRecord, environment
from src.signals import RunInterrupted

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "run_results"


class RunResults(pl.Callback):
    """Collects what a run was, how it went and how it ended, and writes ``results.json``.

    Epochs are counted from 1, as Keras prints them. Throughput counts training steps only
    (validation excluded). The file is rewritten after every epoch, so even a killed run leaves
    its history behind: once the epoch's checkpoints are written (as the next epoch starts, or
    the fit ends), so that it never names a checkpoint that is not on disk. A run that fails
    records the epochs whose checkpoints were written, ``stop_reason`` ``failed`` and why.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.record: RunRecord | None = None
        self._clock = _Clock()
        self._resumed_from: str | None = None
        self.fast: dict[str, Any] | None = None  # what --fast turned on, as the CLI tells it
        self._recorded_epochs = 0  # the first epochs of history whose checkpoints are written
        self._recorded_best: str | None = None  # the best checkpoint then

    # what ran --------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._clock.fit_started = time.perf_counter()
        self.record = _new_record(trainer, pl_module, self.fast, self._resumed_from or trainer.ckpt_path)

    # how fast --------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(self.history) > self._recorded_epochs:  # the last epoch's checkpoints are written
            self._record_epochs(trainer)
            self._write(trainer, stop_reason="running")
        self._clock.start()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._clock.train_images += len(batch[1]) * trainer.world_size

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._clock.stop(trainer.strategy.root_device)

    # how it went -----------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._clock.stop(trainer.strategy.root_device)
        self.history.append(_history_row(trainer))

    # how it ended ----------------------------------------------------------------------
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record_epochs(trainer)
        self._write(trainer, stop_reason=_stop_reason(trainer))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """In fit, or in the test after fit: either way the run is not complete. A run stopped at a
        safe point has written all its checkpoints; a failed one keeps the epochs recorded before."""
        self._clock.stop(trainer.strategy.root_device)
        if self.record is None:
            return
        if isinstance(exception, RunInterrupted):
            self._record_epochs(trainer)
        failed = not _is_interrupt(exception)
        cannot_write = write_failure(exception, self.record.run_dir or "the run directory")
        if failed:
            self.record.failure = str(cannot_write or f"{type(exception).__name__}: {exception}".splitlines()[0])
        try:
            self._write(trainer, stop_reason="failed" if failed else "interrupted")
        except CannotWrite as err:  # results.json keeps its last whole version, which names checkpoints on disk
            if cannot_write is None:  # else the run's own error says it
                log.warning("%s", err)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.record:  # a stand-alone `test` run: no fit to report on
            return
        self.record.test_loss = float(trainer.callback_metrics["test_loss"])
        self.record.test_acc = float(trainer.callback_metrics["test_acc"])
        self.record.tested_checkpoint = trainer.ckpt_path
        self.record.test_images_evaluated = _evaluated_images(trainer, "test")
        self._write(trainer)

    def _record_epochs(self, trainer: pl.Trainer) -> None:
        """Every epoch so far has its checkpoints written: results.json may name them."""
        self._recorded_epochs = len(self.history)
        self._recorded_best = _best_checkpoint(trainer, self.record.run_dir if self.record else None)

    def _write(self, trainer: pl.Trainer, stop_reason: str | None = None) -> None:
        record = self.record
        if self._clock.fit_started is None or record is None:
            return
        _set_history(record, self.history[: self._recorded_epochs])
        record.wall_time_s = round(self._clock.wall_seconds(), 2)
        record.train_images_per_s = self._clock.images_per_s()
        record.best_checkpoint = self._recorded_best
        if stop_reason:
            record.stop_reason = stop_reason
        # record.run_dir, not trainer.log_dir: that is a collective call, and only rank 0 writes
        if trainer.is_global_zero and record.run_dir:
            record.write(record.run_dir)

    # A resumed fit continues the record; testing a checkpoint must not rewind it.
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {"history": self.history, **self._clock.state(),
                                      "threads": torch.get_num_threads()}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._resumed_from = checkpoint.get("stage_from")  # a new stage names its source, not a temp file
        if trainer.state.fn == "fit" and CHECKPOINT_KEY in checkpoint:
            self.history = checkpoint[CHECKPOINT_KEY]["history"]
            self._clock.load(checkpoint[CHECKPOINT_KEY])
            if trainer.strategy.root_device.type == "cpu" and trainer.is_global_zero:
                _warn_on_other_threads(checkpoint[CHECKPOINT_KEY].get("threads"))


def _warn_on_other_threads(trained_with: int | None) -> None:
    """A resume on another number of CPU threads adds up floats in another order: as sound a run, but
    not the one an uninterrupted run would have been, which the user of a seed may expect."""
    threads = torch.get_num_threads()
    if trained_with is not None and trained_with != threads:
        log.warning(
            "warning: resuming on %d CPU threads, where the run trained on %d: sums come out in another order, "
            "so from here the run will not repeat, bit for bit, the one it would have been without the stop. "
            "To resume it exactly, start it with OMP_NUM_THREADS=%d.", threads, trained_with, trained_with)


class _Clock:
    """A run's wall time, and the time and images of its training steps for its throughput: apart
    from the record, as a resumed fit carries all three on from its checkpoint."""

    def __init__(self) -> None:
        self.fit_started: float | None = None
        self.earlier_wall_seconds = 0.0  # of the run before a resume
        self.train_seconds = 0.0
        self.train_images = 0
        self._running_since: float | None = None

    def start(self) -> None:
        self._running_since = time.perf_counter()

    def stop(self, device: torch.device) -> None:
        if self._running_since is not None:
            if device.type == "cuda":
                torch.cuda.synchronize()
            self.train_seconds += time.perf_counter() - self._running_since
            self._running_since = None

    def wall_seconds(self) -> float:
        return self.earlier_wall_seconds + time.perf_counter() - (self.fit_started or time.perf_counter())

    def images_per_s(self) -> float | None:
        return round(self.train_images / self.train_seconds, 1) if self.train_seconds else None

    def state(self) -> dict[str, float]:
        """For the checkpoint, under the keys it has always had."""
        return {"train_seconds": self.train_seconds, "train_images": self.train_images,
                "wall_seconds": self.wall_seconds()}

    def load(self, saved: dict[str, Any]) -> None:
        self.train_seconds, self.train_images = saved["train_seconds"], saved["train_images"]
        self.earlier_wall_seconds = saved.get("wall_seconds", 0.0)


def _new_record(
    trainer: pl.Trainer, pl_module: pl.LightningModule, fast: dict[str, Any] | None, resumed_from: str | None
) -> RunRecord:
    """What ran: the config, every hyperparameter, the data and the environment, as the fit starts."""
    optimizer = trainer.optimizers[0]
    datamodule = trainer.datamodule
    return RunRecord(
        config=trainer.logger.name if trainer.logger else None,
        run_dir=trainer.log_dir,
        hparams={
            "optimizer": f"{type(optimizer).__module__}.{type(optimizer).__name__}",
            "optimizer_args": _plain(optimizer.defaults),
            **_plain(pl_module.hparams),
            **(_plain(datamodule.hparams) if datamodule else {}),
            "seed": int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed())),
            "precision": trainer.precision,
            "fast": fast,
            "devices": trainer.world_size,
        },
        data=datamodule.summary() if hasattr(datamodule, "summary") else {},
        val_images_evaluated=_evaluated_images(trainer, "val"),
        environment=environment(_device_name(trainer.strategy.root_device), str(trainer.precision),
                                torch.get_num_threads()),
        resumed_from=resumed_from,
    )


def _history_row(trainer: pl.Trainer) -> dict[str, float]:
    """The epoch just trained: its number (from 1), its logged metrics and the learning rate it ended on
    (a number: --model.compile_update's lr is a tensor that the decay fills in place, step after step)."""
    metrics = {k: float(trainer.callback_metrics[k]) for k in EPOCH_METRICS if k in trainer.callback_metrics}
    lr = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else None
    return {"epoch": trainer.current_epoch + 1, **metrics, "lr": lr}


def _set_history(record: RunRecord, history: list[dict[str, float]]) -> None:
    """The epochs recorded, and the best of them by ``val_acc``."""
    best = max(history, key=lambda h: h.get("val_acc", float("-inf")), default={})
    record.epochs = len(history)
    record.best_val_acc = best.get("val_acc")
    record.best_epoch = best.get("epoch")
    record.history = history


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """The JSON-friendly entries, without LightningCLI's private ``_instantiator`` and the like."""
    plain = (str, int, float, bool, type(None), list, tuple)
    return {k: v for k, v in values.items() if isinstance(v, plain) and not k.startswith("_")}


def _evaluated_images(trainer: pl.Trainer, split: str) -> int | None:
    """How many of the split's images the trainer's ``limit_{split}_batches`` leaves it evaluating."""
    datamodule = trainer.datamodule
    return datamodule.evaluated_images(split, trainer) if hasattr(datamodule, "evaluated_images") else None


def _best_checkpoint(trainer: pl.Trainer, run_dir: str | None) -> str | None:
    """The monitored checkpoint's path relative to the run directory, so a moved run still finds it."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor and callback.best_model_path and run_dir:
            path = Path(callback.best_model_path)
            return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)
    return None


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def _is_interrupt(exception: BaseException) -> bool:
    return isinstance(exception, (RunInterrupted, KeyboardInterrupt, SystemExit))


def _stop_reason(trainer: pl.Trainer) -> str:
    if has_diverged(trainer):
        return "diverged"
    if any(isinstance(cb, EarlyStopping) and cb.stopped_epoch > 0 for cb in trainer.callbacks):
        return "early_stopping"
    if trainer.fast_dev_run:
        return "fast_dev_run"
    if trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs:
        return "max_epochs"
    if 0 < trainer.max_steps <= trainer.global_step:
        return "max_steps"
    return "stopped"
