"""Settings that cannot work, refused before a run writes anything.

Lightning finds some of these itself, but late: after the run directory exists, or at the
first training step, with a traceback. Each check here names the setting and the fix.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.accelerators import AcceleratorRegistry
from pytorch_lightning.utilities import rank_zero_only

from src.checkpoint_files import load_checkpoint
from src.errors import UserInputError

log = logging.getLogger(__name__)

# The images become float32 in the data module's batch hook, after Lightning converts inputs to
# the trainer's precision, so only float32 and autocast from it work (64-true, *-true would not).
SUPPORTED_PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16")
# ckpt_path values Lightning resolves itself, rather than paths
CHECKPOINT_NAMES = ("last", "best", "hpc", "registry")


def check_run(subcommand: str | None, config: Namespace) -> None:
    """Refuse ``config`` (one subcommand's) if it cannot work; warn where it works but badly."""
    trainer = config.trainer
    _check_precision(trainer.precision)
    _check_accelerator(trainer.accelerator)
    _warn_about_cpu_processes(trainer.accelerator, trainer.devices, config.data.batch_size)
    if trainer.enable_checkpointing is False:
        raise UserInputError(
            "--trainer.enable_checkpointing false is not supported: a run keeps checkpoints/last.ckpt to resume "
            "after an interruption (--ckpt_path last) and its best checkpoint, which fit tests and src.export "
            "exports. To test the last epoch's weights as the notebook did, run `python -m src.cli test --config "
            "<config> --ckpt_path runs/<name>/version_N/checkpoints/last.ckpt`; to save space, delete a finished "
            "run's checkpoints/ folder (results.json and the TensorBoard logs keep its numbers)."
        )
    if subcommand == "fit" and trainer.max_epochs == 0 and not trainer.fast_dev_run:
        raise UserInputError(
            "--trainer.max_epochs 0 trains nothing, and the test after fit would report the untrained weights. "
            "Give 1 or more epochs (-1: no limit, until early stopping), or evaluate an existing checkpoint with "
            "`python -m src.cli test --ckpt_path PATH`."
        )
    if subcommand in ("validate", "test"):
        _check_evaluated_checkpoint(subcommand, config.ckpt_path)
    elif subcommand == "fit":
        for flag in ("ckpt_path", "new_stage_from"):
            if config.get(flag) and config[flag] not in CHECKPOINT_NAMES:
                check_checkpoint_file(config[flag], f"--{flag}")
    _check_checkpoint_loads_weights_only(config)


def check_resolved_run(subcommand: str, resolved: dict[str, Any]) -> None:
    """:func:`check_run` for a config printed by ``--print_config`` and read back as plain values
    (a sweep checks its runs' arguments so)."""
    check_run(subcommand, _namespace(resolved))


def _namespace(values: dict[str, Any]) -> Namespace:
    return Namespace({key: _namespace(value) if isinstance(value, dict) else value for key, value in values.items()})


def _check_checkpoint_loads_weights_only(config: Namespace) -> None:
    """LightningCLI reads ``--ckpt_path``'s hyperparameters right after parsing, and Lightning later
    loads it whole: open it weights-only first, so that an unsafe or unreadable file is refused
    with its name before any work starts."""
    if config.get("weights_only") is False:
        raise UserInputError(
            "--weights_only false is not supported: every checkpoint is loaded weights-only (tensors and "
            "plain values), which is all this project's checkpoints hold. Leave --weights_only out."
        )
    ckpt_path = config.get("ckpt_path")
    if ckpt_path and Path(ckpt_path).is_file():
        load_checkpoint(ckpt_path)


def check_checkpoint_file(path: str | Path, flag: str) -> None:
    """Refuse a checkpoint that is missing, a folder, or not a whole PyTorch checkpoint file
    (cut off while copying, say), without unpickling anything from it."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(
            f"{flag} {path}: no such file. Give a .ckpt file from a run's checkpoints/ folder, e.g. "
            "runs/<config>/version_0/checkpoints/last.ckpt."
        )
    if path.is_dir():
        raise UserInputError(
            f"{flag} {path} is a folder; give one of its .ckpt files (best-*.ckpt or last.ckpt in checkpoints/)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # reads every entry and checks its CRC
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        damaged = f"{type(err).__name__}: {err}"
    if damaged:
        raise UserInputError(
            f"{flag} {path} is not a complete checkpoint ({damaged}): it was probably cut off while being written "
            "or copied. Copy it again, or use another checkpoint of the run (last.ckpt or best-*.ckpt)."
        )


@contextmanager
def lightning_config_errors() -> Iterator[None]:
    """Lightning's own refusals of trainer settings (a strategy without the devices it needs, a
    negative max_epochs, ...) as one message instead of a traceback."""
    try:
        yield
    except MisconfigurationException as err:
        raise UserInputError(f"The trainer settings do not work together: {err} Fix the --trainer.* flags.") from err


def _check_evaluated_checkpoint(subcommand: str, ckpt_path: str | None) -> None:
    if not ckpt_path or ckpt_path in CHECKPOINT_NAMES:
        raise UserInputError(
            f"`{subcommand}` evaluates a checkpoint: give its path with --ckpt_path, e.g. "
            "runs/<config>/version_0/checkpoints/last.ckpt (or the best-*.ckpt beside it). "
            + ("Without one, it would evaluate untrained weights." if not ckpt_path else
               f"'{ckpt_path}' only means something within a fit.")
        )
    check_checkpoint_file(ckpt_path, "--ckpt_path")


def _check_precision(precision: object) -> None:
    if precision is None or str(precision) in SUPPORTED_PRECISIONS:
        return
    raise UserInputError(
        f"--trainer.precision {precision} is not supported: the data module hands the model float32 images, so it "
        "runs in float32 (32-true, the default) or under autocast (bf16-mixed, 16-mixed). Choose one of "
        f"{', '.join(SUPPORTED_PRECISIONS)}."
    )


def _check_accelerator(accelerator: object) -> None:
    name = str(accelerator).lower()
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        reason = "this PyTorch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise UserInputError(
            f"--trainer.accelerator {accelerator}: no GPU is available ({reason}). "
            "Use --trainer.accelerator cpu, or auto to take a GPU when there is one."
        )
    elif name in AcceleratorRegistry and not AcceleratorRegistry[name]["accelerator"].is_available():
        raise UserInputError(
            f"--trainer.accelerator {accelerator}: Lightning finds no {name} device here (mps needs an Apple GPU, "
            "tpu a TPU and the torch_xla package). Use --trainer.accelerator cpu, or auto to take what there is."
        )


def _warn_about_cpu_processes(accelerator: object, devices: object, batch_size: int) -> None:
    on_cpu = str(accelerator) == "cpu" or (str(accelerator) == "auto" and not torch.cuda.is_available())
    processes = int(devices) if str(devices).isdigit() else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if on_cpu and processes and processes > cores and rank_zero_only.rank == 0:
        log.warning(
            "--trainer.devices %d starts %d training processes on %d CPU cores: they compete for the cores, so "
            "expect the run to be slower than with --trainer.devices %d, and each step takes %d x %d images "
            "(--data.batch_size per process).",
            processes, processes, cores, cores, processes, batch_size,
        )
