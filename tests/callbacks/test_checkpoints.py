"""The project's checkpoint callbacks: names count epochs from 1 as results.json does, state stays
compatible with Lightning's, the record follows a moved run, and a stop asked for twice by
SIGTERM is still a stop at a safe point."""

import os
import signal
from functools import partial
from pathlib import Path

import pytest
import torch

from pytorch_lightning.callbacks import ModelCheckpoint

from src.callbacks.checkpoints import ResumeCheckpoint, RunCheckpoint


@pytest.mark.parametrize("ours, lightnings", [
    (partial(RunCheckpoint, monitor="val_acc", mode="max"), partial(ModelCheckpoint, monitor="val_acc", mode="max")),
    (ResumeCheckpoint, partial(ModelCheckpoint, monitor=None)),
], ids=["best", "last"])
def test_checkpoints_written_with_lightnings_class_restore_into_ours(tmp_path, ours, lightnings):
    # Lightning restores a callback from checkpoint["callbacks"][callback.state_key]
    written = lightnings(dirpath=str(tmp_path))
    written.best_model_score, written.best_model_path = torch.tensor(0.7), str(tmp_path / "best-epoch003.ckpt")
    saved_callbacks = {written.state_key: written.state_dict()}
    restored = ours(dirpath=str(tmp_path))
    restored.load_state_dict(saved_callbacks[restored.state_key])
    assert restored.best_model_score == 0.7 and restored.best_model_path == written.best_model_path


def test_a_moved_run_keeps_its_best_scores_and_paths(tmp_path):
    old, new = Path("/old/run/checkpoints"), tmp_path / "checkpoints"
    callback = RunCheckpoint(dirpath=str(new), monitor="val_acc", mode="max")
    callback.load_state_dict({
        "monitor": "val_acc", "best_model_score": 0.7, "best_model_path": str(old / "best-epoch001.ckpt"),
        "current_score": 0.6, "dirpath": str(old), "best_k_models": {str(old / "best-epoch001.ckpt"): 0.7},
        "kth_best_model_path": str(old / "best-epoch001.ckpt"), "kth_value": 0.7, "last_model_path": "",
    })
    assert callback.best_model_score == 0.7
    assert callback.best_model_path == str(new / "best-epoch001.ckpt")
    assert callback.best_k_models == {str(new / "best-epoch001.ckpt"): 0.7}


def test_the_fifth_epoch_is_named_epoch_005():
    checkpoint = RunCheckpoint(filename="best-epoch{epoch:03d}-val_acc{val_acc:.4f}", auto_insert_metric_name=False)
    name = checkpoint.format_checkpoint_name({"epoch": torch.tensor(4), "val_acc": torch.tensor(0.5)})
    assert name == "best-epoch005-val_acc0.5000.ckpt"  # Lightning's current_epoch 4 is the fifth epoch


@pytest.fixture
def caught_signals():
    """A ResumeCheckpoint handling this process's SIGINT and SIGTERM, as during training."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    callback = ResumeCheckpoint()
    callback.on_train_start(None, None)
    yield callback
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_repeated_sigterm_keeps_the_stop_at_a_safe_point(caught_signals):
    # a scheduler signals every process of a job, and a sweep passes its own signal on
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)
    assert caught_signals.pending_signal == signal.SIGTERM


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_while_a_stop_is_pending_stops_at_once(caught_signals, first):
    os.kill(os.getpid(), first)
    os.kill(os.getpid(), signal.SIGTERM)  # the sweep's copy of a terminal's Ctrl-C changes nothing
    assert caught_signals.pending_signal == first
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
