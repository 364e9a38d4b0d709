"""``results.json``, the project's contract: what one run was, how it went, where it ran.

Every writer and reader goes through :class:`RunRecord`, so the keys live in one place. The
file carries a ``schema_version``; files written before it existed (version 1) still read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from src.files import write_atomic
from src.paths import PROJECT_ROOT

RESULTS_FILE = "results.json"
SCHEMA_VERSION = 2
# each epoch's metrics in a run's history, as the training module logs them
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")
# stop_reason values of a run that ended by itself, as opposed to "running", "interrupted", "failed"
FINAL_STOP_REASONS = frozenset({"early_stopping", "max_epochs", "max_steps", "diverged", "pruned", "stopped"})
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
# hparams (and optimizer arguments) that describe the machine or the implementation rather than the
# experiment: two runs that differ only in these are runs of one experiment.
MACHINE_HPARAMS = frozenset({
    "data_dir", "source", "download", "channels_last", "compile", "fast_dropout", "compile_update", "eval_batch_size",
    "foreach", "fused", "capturable", "differentiable", "fast",
})


@dataclass
class RunRecord:
    """One run's ``results.json``. Epochs count from 1, as Keras printed them; accuracies are fractions."""

    config: str | None = None
    run_dir: str | None = None
    stop_reason: str | None = None
    epochs: int = 0
    best_epoch: int | None = None
    best_val_acc: float | None = None
    best_checkpoint: str | None = None  # relative to run_dir, so a moved run still finds it
    # images each validation evaluated: data["val_images"], fewer under --trainer.limit_val_batches
    val_images_evaluated: int | None = None
    test_loss: float | None = None
    test_acc: float | None = None
    tested_checkpoint: str | None = None
    test_images_evaluated: int | None = None  # likewise, of data["test_images"]
    wall_time_s: float | None = None
    train_images_per_s: float | None = None
    resumed_from: str | None = None
    pruned_at_epoch: int | None = None  # set by src.search when its pruner stopped the run
    failure: str | None = None  # why a run failed (stop_reason "failed"), e.g. a checkpoint it could not write
    hparams: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @property
    def optimizer(self) -> str | None:
        """The optimizer's class, ``module.Name``."""
        return self.hparams.get("optimizer")

    @property
    def optimizer_args(self) -> dict[str, Any]:
        """The optimizer's arguments as it was built (lr, momentum, betas, …)."""
        return self.hparams.get("optimizer_args", {})

    @property
    def stopped_epoch_test_acc(self) -> float | None:
        """The test accuracy of the epoch the run stopped at, known where it validated on the test set
        (the notebook's protocol): what the notebook's ``evaluate`` after ``fit`` reported."""
        if not (self.data.get("validates_on_test") and self.history):
            return None
        return self.history[-1].get("val_acc")

    @property
    def is_complete(self) -> bool:
        """Trained to a normal end and was tested (a diverged run has nothing worth testing)."""
        if self.stop_reason not in FINAL_STOP_REASONS:
            return False
        return self.stop_reason == "diverged" or self.test_acc is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known} | {"schema_version": values.get("schema_version", 1)})

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """From a run directory or its ``results.json``; ``ValueError`` names a file that is not one."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); the run that wrote it may have been cut off") from err
        if not isinstance(values, dict):
            raise ValueError(f"{path} does not hold a run record (a JSON object)")
        return cls.from_dict(values)

    def write(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / RESULTS_FILE
        write_atomic(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path


def read_record(run_dir: str | Path) -> RunRecord | None:
    """The run's record, or None when it has none (yet) or an unreadable one."""
    try:
        return RunRecord.read(run_dir)
    except (OSError, ValueError):
        return None


def environment(device: str, precision: str, threads: int) -> dict[str, Any]:
    """What a reader needs to trust a number: where, on how many of torch's CPU threads (they set the
    order of float sums, so a seed repeats a run only on as many), at what precision, with which code."""
    commit, dirty = _git_state()
    return {
        "device": device,
        "precision": precision,
        **machine(),
        "threads": threads,
        "python": platform.python_version(),
        **{name.replace("-", "_"): _version(name) for name in ("torch", "pytorch-lightning", "torchmetrics")},
        "git_commit": commit,
        "git_dirty": dirty,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_state() -> tuple[str | None, bool | None]:
    """The checked-out commit of this code and whether tracked files differ from it; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None


def machine(flags: Iterable[str] = CPU_FLAGS, cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU model, its core count and which of ``flags`` it has: what speed and low-precision
    numerics depend on. ``cpuinfo`` is /proc/cpuinfo's text, read when not given."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, present = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():  # the first processor's entry speaks for all
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            present = set(value.split())
            break
    return {"cpu": model, "cpu_flags": [f for f in flags if f in present], "cpu_count": os.cpu_count()}
