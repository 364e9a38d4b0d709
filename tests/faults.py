"""Faults on cue: callbacks that signal their own process, fill up the disk, or slow a run down, at a chosen point."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytorch_lightning as pl

from tests.disks import DISKS

POINTS = ("train", "validation", "epoch_start", "test")


class SignalAt(pl.Callback):
    """Sends ``signal_name`` to this process once, at ``point`` of epoch ``epoch`` (from 1):
    after training step ``step`` ("train"), during validation, as the epoch starts, or during the
    test after fit. What a user's Ctrl-C, a scheduler's SIGTERM or ``kill -9`` would do there."""

    def __init__(self, signal_name: str, point: str, epoch: int = 2, step: int = 20) -> None:
        assert point in POINTS, point
        self.signum = signal.Signals[signal_name]
        self.point, self.epoch, self.step = point, epoch, step
        self.sent = False

    def _send(self, trainer: pl.Trainer, point: str) -> None:
        if not self.sent and point == self.point and (point == "test" or trainer.current_epoch + 1 == self.epoch):
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            self._send(trainer, "train")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._send(trainer, "validation")

    def on_train_epoch_start(self, trainer, pl_module):
        self._send(trainer, "epoch_start")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._send(trainer, "test")


def signal_at(signal_name: str, point: str, epoch: int = 2, step: int = 20) -> str:
    """The CLI flag that adds a :class:`SignalAt` to a run."""
    return (
        '--trainer.callbacks+={"class_path": "tests.faults.SignalAt", "init_args": '
        f'{{"signal_name": "{signal_name}", "point": "{point}", "epoch": {epoch}, "step": {step}}}}}'
    )


class FillDiskAt(pl.Callback):
    """Fills the test's small disk at ``disk`` (tests.disks.SmallDisk), leaving ``leave`` bytes, as
    the fit ends: after the last epoch's checkpoints, before results.json says how the run ended."""

    def __init__(self, disk: str, leave: int = 0) -> None:
        self.disk, self.leave = Path(disk), leave

    def on_fit_end(self, trainer, pl_module):
        DISKS[self.disk].fill(self.leave)


class Slow(pl.Callback):
    """Sleeps ``seconds`` after each training step: a run long enough to be stopped from outside
    at a moment a test can catch, whatever the machine's speed; what it trains is unchanged."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)


def slow(seconds: float) -> str:
    """The CLI flag that adds a :class:`Slow` to a run."""
    return f'--trainer.callbacks+={{"class_path": "tests.faults.Slow", "init_args": {{"seconds": {seconds}}}}}'
