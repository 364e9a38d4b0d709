"""A run's checkpoints: where its best and last ones are, and opening one without trusting it.

A ``.ckpt`` file is a pickle, and unpickling can call any function the file names. So every
checkpoint this project opens (``--ckpt_path``, ``--new_stage_from``, the test after ``fit``,
``src.export`` and ``src.predict``) goes through :func:`load_checkpoint`: ``torch.load`` with
``weights_only=True``, which builds tensors, plain containers, numbers and strings and the few
types allow-listed here, and refuses a file that names anything else before any of it runs.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnitInterval,
    PositiveFloat,
    PositiveInt,
)
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from src.errors import UserInputError
from src.files import write_atomic
from src.results import RunRecord, read_record

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINTS = "best-*.ckpt"

# All a checkpoint of this project holds beyond torch's own weights-only types (tensors, dicts,
# lists, tuples, OrderedDict, numbers, strings): jsonargparse's constrained numbers, which a
# hyperparameter declared as PositiveInt, ClosedUnitInterval, … keeps in ``hyper_parameters``.
# They are int and float subclasses whose constructors only check a range.
SAFE_GLOBALS = (PositiveInt, NonNegativeInt, PositiveFloat, NonNegativeFloat, ClosedUnitInterval, OpenUnitInterval)
torch.serialization.add_safe_globals(list(SAFE_GLOBALS))  # for Lightning's own torch.load calls too


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path``, on the CPU; a :class:`UserInputError` names a file that is
    missing, unreadable or refused because it asks to build something that could run code."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(
            f"The checkpoint {path} does not exist. Give a .ckpt file from a run's {CHECKPOINT_DIR}/ folder, "
            f"e.g. runs/adam/version_0/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.findall(r"GLOBAL (\S+)", str(err))
        if refused:
            raise UserInputError(
                f"{path} was not loaded: it asks to build {', '.join(refused)}, and building that could run "
                "code on this machine. This project's checkpoints hold only weights and plain values, so this "
                "file was written by other code or altered. Use checkpoints only from runs you trust."
            ) from err
        raise _unreadable(path, "it is not a file torch.save wrote") from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise _unreadable(path, str(err).split(". ")[0] or "it ends too early") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise _unreadable(path, "it holds no state_dict")
    return checkpoint


def _unreadable(path: Path, why: str) -> UserInputError:
    return UserInputError(
        f"{path} is not a readable checkpoint ({why}); it may have been cut off while being written. "
        f"Give a .ckpt file from a run's {CHECKPOINT_DIR}/ folder, e.g. its {LAST_CHECKPOINT}."
    )


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reading (``ckpt_path`` of fit, validate and test) through
    :func:`load_checkpoint`: weights only, whatever ``weights_only`` it is given; and its writing
    through :func:`src.results.write_atomic`: a checkpoint that cannot be written whole (a full
    disk, a read-only folder) leaves the file it would replace, or none, and raises
    :class:`src.errors.CannotWrite`."""

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} writes local files and takes no storage_options.")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(path, buffer.getvalue())


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """``checkpoints/last.ckpt``, written after every epoch and on an interruption: where a resume starts."""
    path = Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT
    return path if path.is_file() else None


def best_checkpoint(run_dir: str | Path, record: RunRecord | None = None) -> Path | None:
    """The checkpoint of the run's best epoch, or None when the run cannot tell.

    It is the one the run's record (``record``, or its results.json) names as ``best_checkpoint``,
    else as ``tested_checkpoint``, looked for in the run directory first so that a moved or
    copied run finds its own; else the run's only ``checkpoints/best-*.ckpt``.
    """
    run_dir = Path(run_dir)
    record = record or read_record(run_dir)
    for named in (record.best_checkpoint, record.tested_checkpoint) if record else ():
        if named:
            for candidate in (run_dir / CHECKPOINT_DIR / Path(named).name, run_dir / named, Path(named)):
                if candidate.is_file():
                    return candidate
    candidates = best_candidates(run_dir)
    return candidates[0] if len(candidates) == 1 else None


def best_candidates(run_dir: str | Path) -> list[Path]:
    """Every ``checkpoints/best-*.ckpt`` of a run, in name (epoch) order."""
    return sorted((Path(run_dir) / CHECKPOINT_DIR).glob(BEST_CHECKPOINTS))
