"""What ``python -m src.cli fit`` says about a run: what runs before it starts, the result when
it ends, and none of Lightning's own chatter unless ``--log_level INFO`` asks for it."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch

from src.fast import FastChoice, speedup_hint
from src.results import RESULTS_FILE, RunRecord

# Lightning's info messages (tips, "GPU available", "Seed set", checkpoint restores) go to
# these loggers; the model summary is one of them and is kept.
log = logging.getLogger(__name__)

LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric")
MODEL_SUMMARY_LOGGER = "pytorch_lightning.callbacks.model_summary"
# Deprecations raised inside Lightning by its own use of other libraries: nothing a user can act on.
LIGHTNING_INTERNALS = r"(pytorch_lightning|lightning_fabric)\."
# Lightning's own notices that need nothing of a user: torch's advice to its LearningRateMonitor,
# which copies a tensor lr (--model.compile_update's), ModelCheckpoint's notice on every resume
# that the run's checkpoint folder is not empty (a new run never reaches a folder that holds one),
# and its hint on every run, wherever SLURM's `srun` is installed, to start the run with it.
LIGHTNING_NOTICES = (
    "To copy construct from a tensor", "Checkpoint directory .* exists and is not empty",
    "The `srun` command is available on your system but is not used",
)
LogLevel = Literal["WARNING", "INFO", "DEBUG"]


def quiet_lightning(level: LogLevel) -> None:
    """Set the level of Lightning's messages; below WARNING, show the warnings raised by its own use of
    torch and other libraries too."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(level)
    logging.getLogger(MODEL_SUMMARY_LOGGER).setLevel(logging.INFO)
    action = "ignore" if level == "WARNING" else "default"
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings(action, category=category, module=LIGHTNING_INTERNALS)
    for notice in LIGHTNING_NOTICES:
        warnings.filterwarnings(action, message=notice, category=UserWarning, module=LIGHTNING_INTERNALS)


def log_run_start(config_files: list[Any], seed: Any, datamodule: Any, trainer: pl.Trainer,
                  fast: FastChoice | None = None) -> None:
    """What runs: config files, data, device and precision, what ``--fast`` turned on (or, for a
    float32 run on a CPU with native bf16, what it would gain), and where the run is written."""
    data = datamodule.hparams
    source = data.source or "torchvision's CIFAR-10" + (" (downloaded if missing)" if data.download else "")
    split = (
        "validating on the TEST set (val_split 0)" if data.val_split == 0
        else f"{data.val_split:,} training images held out for validation"
    )
    log.info("config   %s, seed %s", " + ".join(_relative(f) for f in config_files), seed)
    log.info("data     %s, cached in %s; batch %d; %s", source, data.data_dir, data.batch_size, split)
    log.info("device   %s, precision %s", _device(trainer), trainer.precision)
    if fast:
        log.info("fast     %s", fast.describe())
    elif hint := speedup_hint(str(trainer.precision), trainer.strategy.root_device.type):
        log.info("hint     %s", hint)
    log.info("run      %s", trainer.log_dir)


def log_partial_evaluation(datamodule: Any, trainer: pl.Trainer, evaluated: dict[str, int]) -> None:
    """One line when ``--trainer.limit_*_batches`` cuts validation or test short (``evaluated``: the
    images each will see): their metrics then measure only those images."""
    names = {"val": "validation", "test": "test"}
    parts = [
        f"{names[split]} {count:,} of {len(datamodule.splits[split][1]):,} images "
        f"(--trainer.limit_{split}_batches {getattr(trainer, f'limit_{split}_batches')})"
        for split, count in evaluated.items() if count < len(datamodule.splits[split][1])
    ]
    if parts:
        log.info("evaluate %s", ", ".join(parts))


def log_run_result(record: RunRecord) -> None:
    """How the run ended, its best epoch and test result, and where results.json is."""
    epochs = f"{record.epochs} epoch{'s' if record.epochs != 1 else ''}"
    parts = [f"{record.stop_reason} after {epochs}"]
    if record.best_val_acc is not None:
        parts.append(f"best val_acc {record.best_val_acc:.4f} at epoch {record.best_epoch}")
    if record.test_acc is not None:
        tested = f" ({Path(record.tested_checkpoint).name})" if record.tested_checkpoint else ""
        parts.append(f"test_acc {record.test_acc:.4f}, test_loss {record.test_loss:.4f}{tested}")
    log.info("result   %s", "; ".join(parts))
    log.info("results  %s", Path(record.run_dir or ".") / RESULTS_FILE)


def _relative(path: Any) -> str:
    """``configs/base.yaml`` rather than its absolute path, when it lies below the working directory."""
    absolute = Path(str(path)).resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)


def _device(trainer: pl.Trainer) -> str:
    device = trainer.strategy.root_device
    name = f"{device.type} ({torch.get_num_threads()} threads)" if device.type == "cpu" else str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    processes = trainer.num_devices * trainer.num_nodes
    return name if processes == 1 else f"{name}, {processes} processes ({type(trainer.strategy).__name__})"
