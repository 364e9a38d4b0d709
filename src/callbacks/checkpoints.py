"""Checkpoints a long grid can rely on: a best-checkpoint record that survives moving the run,
and a ``last.ckpt`` that always resumes exactly, however the run was stopped."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor

from src.compat import RemoveReplacedLater
from src.results import RunRecord, read_record
from src.signals import RunInterrupted

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunCheckpoint(RemoveReplacedLater, ModelCheckpoint):
    """Lightning's ModelCheckpoint with three differences: ``{epoch}`` in a name counts from 1
    (``best-epoch005-…`` is the fifth epoch, the one results.json calls epoch 5), its record
    follows the run directory when it is moved or copied, and a checkpoint that a better one
    replaces stays on disk while the run's results.json names it.

    Lightning keeps only ``best_model_path`` (pointing at the old place) when a checkpoint's
    folder changed, and forgets the best score, so the first epoch after resuming would become
    "best" whatever its score. Here the stored paths are moved to the new folder instead.

    Lightning removes a replaced checkpoint as soon as the better one is written, but results.json
    names the better one only once all of the epoch's checkpoints are written (see
    :class:`~src.callbacks.run_results.RunResults`): a run that fails or is killed in between
    would leave a record naming a checkpoint that is gone. Here it is removed when the next epoch
    starts or the fit ends (Lightning calls checkpoint callbacks after the others, so after
    results.json is written), and not while results.json still names it.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._replaced: list[str] = []

    def replaced(self, trainer: pl.Trainer, filepath: str) -> None:
        self._replaced.append(filepath)  # removed by _remove_replaced

    def _remove_replaced(self, trainer: pl.Trainer) -> None:
        if not getattr(self, "_replaced", None):  # none, or a fit that failed before its setup
            return
        record = (read_record(Path(self.dirpath).parent) if self.dirpath else None) or RunRecord()  # the run's
        named = {Path(name).name for name in (record.best_checkpoint, record.tested_checkpoint) if name}
        for path in [p for p in self._replaced if Path(p).name not in named]:
            trainer.strategy.remove_checkpoint(path)
            self._replaced.remove(path)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove_replaced(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove_replaced(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self._remove_replaced(trainer)

    def format_checkpoint_name(
        self, metrics: dict[str, Tensor], filename: str | None = None, ver: int | None = None, prefix: str | None = None
    ) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename, ver, prefix)

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key, so that checkpoints written with Lightning's class resume here too
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and Path(saved) != Path(self.dirpath):
            state_dict = _relocated(state_dict, Path(saved), Path(self.dirpath))
        super().load_state_dict(state_dict)


class ResumeCheckpoint(RunCheckpoint):
    """``last.ckpt``: written at the end of every epoch, and on Ctrl-C or SIGTERM at the next point
    from which a resumed run continues exactly (``fit --ckpt_path last``).

    A signal does not stop the run where it lands (mid-step, or in validation, whose partial
    metrics a checkpoint cannot resume): the run finishes the training step it is in, or the
    validation and epoch it is in, writes ``last.ckpt`` there and raises :class:`RunInterrupted`.
    A signal during the test after fit stops it at the next batch (the test reruns on resume).
    A Ctrl-C while a stop is pending stops at once, without a checkpoint; ``last.ckpt`` then holds
    the last safe point, as after ``kill -9``. A repeated SIGTERM asks nothing new (a scheduler
    signals every process of a job, a sweep passes its own signal on), so it changes nothing.
    Lightning writes ``save_last`` only with a new best checkpoint, which is why this one always
    writes.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        super().__init__(
            dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False,
            save_on_train_epoch_end=True,
        )
        self.pending_signal: int | None = None

    # catching the signal --------------------------------------------------------------
    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.pending_signal is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt  # Ctrl-C while stopping: stop now
            return
        self.pending_signal = signum
        log.warning(
            "%s received: stopping at the next safe point (after this training step, or after this "
            "epoch's validation) and writing last.ckpt. Press Ctrl-C again to stop at once.",
            signal.Signals(signum).name,
        )

    def _catch_signals(self) -> None:
        """Replaces Lightning's SIGTERM handler (which stops mid-validation) for this trainer run;
        Lightning's teardown puts the previous handlers back."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._request_stop)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._catch_signals()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._catch_signals()

    def _stop_requested(self, trainer: pl.Trainer) -> bool:
        asked = self.pending_signal is not None
        if trainer.world_size > 1:  # every rank stops at the same step, or the others wait forever
            asked = trainer.strategy.reduce_boolean_decision(asked, all=False)
            self.pending_signal = (self.pending_signal or signal.SIGTERM) if asked else None
        return asked

    # stopping where a resumed run continues exactly -----------------------------------------
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        last_batch = batch_idx + 1 >= trainer.num_training_batches  # batch_idx counts the batches a resume skipped
        if not last_batch and self._stop_requested(trainer):  # the last batch's stop waits for the epoch end
            self._save_last(trainer)
            raise RunInterrupted(self.pending_signal, f"at step {trainer.global_step} (epoch {trainer.current_epoch + 1})")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # last.ckpt of this finished epoch
        if self._stop_requested(trainer) and not trainer.should_stop:
            raise RunInterrupted(self.pending_signal, f"after epoch {trainer.current_epoch + 1}")

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        if self._stop_requested(trainer):
            raise RunInterrupted(self.pending_signal, "during the test; training had finished")

    def _save_last(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.format_checkpoint_name({}), self.save_weights_only)  # "last" takes no metrics


def _relocated(state: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """``state`` with every path under ``old`` moved under ``new``."""

    def move(path: Any) -> Any:
        if not path:
            return path
        try:
            return str(new / Path(path).relative_to(old))
        except ValueError:
            return path

    moved = {**state, "dirpath": str(new)}
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            moved[key] = move(state[key])
    if "best_k_models" in state:
        moved["best_k_models"] = {move(path): score for path, score in state["best_k_models"].items()}
    return moved
