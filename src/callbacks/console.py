"""What a training run shows while it runs: a progress bar that never floods, and one line per epoch."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm, convert_inf

from src.compat import leaves_finished_bars
from src.results import EPOCH_METRICS

log = logging.getLogger(__name__)


class EpochLog(pl.Callback):
    """One line per epoch, as Keras' ``verbose=2`` printed: epoch, seconds (training and
    validation), the epoch's four metrics and the learning rate at its end.

    It is what a batch job's log shows with ``--trainer.enable_progress_bar false``; above a
    progress bar it leaves each finished epoch on the screen. Rank 0 only.
    """

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._whole_epoch = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # An epoch resumed midway does not run on_train_epoch_start: its clock starts here.
        self._started, self._whole_epoch = time.perf_counter(), False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started, self._whole_epoch = time.perf_counter(), True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        seconds = time.perf_counter() - self._started
        parts = [f"epoch {_epoch_of(trainer)}", f"{seconds:.0f} s" + ("" if self._whole_epoch else " since resuming")]
        parts += [f"{name} {float(trainer.callback_metrics[name]):.4f}" for name in EPOCH_METRICS
                  if name in trainer.callback_metrics]
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}")
        log.info(" - ".join(parts))


class EpochProgressBar(TQDMProgressBar):
    """Lightning's progress bar, counting epochs from 1 like everything else here, without the
    validation and sanity-check bars that a fit would nest under it.

    A nested bar moves the cursor up to redraw, which a notebook or a log file cannot do:
    there each epoch would leave lines of debris. Validation is short; the epoch's line
    reports its result.
    """

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        if leaves_finished_bars(self):
            self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset(convert_inf(self.total_train_batches))
        self.train_progress_bar.set_description(f"Epoch {_epoch_of(trainer)}")

    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True) if self.trainer.state.fn == "fit" else super().init_validation_tqdm()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, int | str | float]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the run directory is printed once, at the start
        return metrics


def _epoch_of(trainer: pl.Trainer) -> str:
    """``3/100``: the current epoch counted from 1, out of ``max_epochs`` when there is one."""
    number = trainer.current_epoch + 1
    return f"{number}/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else str(number)
