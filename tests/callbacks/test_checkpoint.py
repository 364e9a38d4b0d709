"""Checkpoint names count epochs from 1, as results.json does."""

import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from src.callbacks.checkpoint import OneBasedCheckpoint


def test_the_fifth_epoch_is_named_epoch_005():
    checkpoint = OneBasedCheckpoint(filename="best-epoch{epoch:03d}-val_acc{val_acc:.4f}", auto_insert_metric_name=False)
    name = checkpoint.format_checkpoint_name({"epoch": torch.tensor(4), "val_acc": torch.tensor(0.5)})
    assert name == "best-epoch005-val_acc0.5000.ckpt"  # Lightning's current_epoch 4 is the fifth epoch


def test_state_key_is_lightnings_so_older_checkpoints_resume_and_stage():
    arguments = {"monitor": "val_acc", "mode": "max"}
    assert OneBasedCheckpoint(**arguments).state_key == ModelCheckpoint(**arguments).state_key
