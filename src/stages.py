"""A new training stage: the notebook's "recompile with a new lr and fit again".

Lightning's ``ckpt_path`` resumes *everything*, the old learning rate included, which is
why staged schedules are a recurring question. A stage instead keeps the weights and the
epoch/step counters (TensorBoard draws one continuous curve) and starts afresh what Keras'
recompile started afresh: the optimizer (unless asked to keep its state), the decay
schedule, early stopping and best-checkpoint tracking.

:func:`src.optim.restart_lr_schedule` is the one place that does this to an optimizer and its
decay schedule, for a stage begun inside a fit (``StagedEarlyStopping``) and for one begun from
a checkpoint (:func:`stage_checkpoint`, ``--new_stage_from``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from src.callbacks.run_results import CHECKPOINT_KEY as RUN_RESULTS_KEY
from src.checkpoint_files import load_checkpoint
from src.compat import set_max_epochs
from src.optim import restart_lr_schedule

# Callbacks that judge a stage on its own: patience and "best so far" count anew.
RESTARTED_CALLBACKS = ("StagedEarlyStopping", "EarlyStopping", "ModelCheckpoint")
STAGE_FROM_KEY = "stage_from"


def stage_checkpoint(
    checkpoint: dict[str, Any], model: pl.LightningModule, keep_optimizer_state: bool, source: str
) -> dict[str, Any]:
    """``checkpoint`` rewritten so that resuming from it starts a new stage of ``model``'s config.

    The stage's results.json reports this stage only (its epochs keep their numbers) and
    names ``source`` as where it started.
    """
    config = model.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    new_lrs = [group["lr"] for group in optimizer.param_groups]
    if keep_optimizer_state:
        optimizer.load_state_dict(checkpoint["optimizer_states"][0])
        schedule.load_state_dict(checkpoint["lr_schedulers"][0])
    restart_lr_schedule(optimizer, schedule, new_lrs, keep_state=keep_optimizer_state)
    staged = dict(checkpoint)
    staged["optimizer_states"] = [optimizer.state_dict()]
    staged["lr_schedulers"] = [schedule.state_dict()]
    staged[STAGE_FROM_KEY] = source
    staged.pop(RUN_RESULTS_KEY, None)
    staged["callbacks"] = {
        key: state
        for key, state in checkpoint.get("callbacks", {}).items()
        if not key.startswith(RESTARTED_CALLBACKS)
    }
    return staged


def fit_new_stage(trainer: pl.Trainer, stage_from: str, keep_optimizer_state: bool, **fit_kwargs: Any) -> None:
    """``trainer.fit(**fit_kwargs)`` as a new stage from the checkpoint ``stage_from``: its weights and
    counters, this config's optimizer and lr; ``max_epochs`` counts this stage's epochs."""
    checkpoint = load_checkpoint(stage_from)
    staged = stage_checkpoint(checkpoint, fit_kwargs["model"], keep_optimizer_state, stage_from)
    set_max_epochs(trainer, checkpoint["epoch"] + 1 + trainer.max_epochs)
    with tempfile.TemporaryDirectory(prefix="stage-start-") as folder:  # removed even if interrupted
        path = Path(folder) / "stage_start.ckpt"
        torch.save(staged, path)
        trainer.fit(**{**fit_kwargs, "ckpt_path": str(path)})
