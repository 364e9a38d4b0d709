"""Small CIFAR-shaped data sets with a learnable signal, written the way real copies are stored;
runs' results as runs leave them, and published runs as a sweep ran them again."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml
from PIL import Image

from src.data.splits import CLASSES
from src.results import RunRecord


def synthetic_images(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class sets the brightness of one colour channel and one image quadrant."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    images = rng.integers(0, 96, size=(len(labels), 32, 32, 3))
    for i, label in enumerate(labels):
        row, col = divmod(label % 4, 2)
        images[i, row * 16 : row * 16 + 16, col * 16 : col * 16 + 16, label % 3] += 150
    return images.clip(0, 255).astype(np.uint8), labels


def write_image_folder(root: Path, train_per_class: int = 30, test_per_class: int = 10, fmt: str = "png") -> Path:
    """``root/{train,test}/<class>/NNNN.<fmt>``, the layout of the shared cifar10-jpg copy."""
    for split, per_class, seed in (("train", train_per_class, 0), ("test", test_per_class, 1)):
        images, labels = synthetic_images(per_class, seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index:04d}.{fmt}")
    return root


def write_tarball(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar10-synthetic")
    return archive


# The experiment of conftest's trained_run: a resume of a copy of it must give the same.
TRAINED_RUN_EXPERIMENT = ["--model.optimizer=src.optim.KerasAdam", "--model.optimizer.lr=1e-3"]


def quiet_fit_args(image_folder: Path, data_dir: Path, root: Path) -> list[str]:
    """CLI flags for a quiet run on a synthetic image folder, writing under ``root``."""
    return [
        f"--data.source={image_folder}",
        f"--data.data_dir={data_dir}",
        "--data.val_split=100",
        f"--trainer.logger.init_args.save_dir={root / 'runs'}",
        f"--trainer.default_root_dir={root}",  # where fast_dev_run's checkpoints go
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


def write_run_results(sweep_dir: Path, config: str, seed: int, test_acc: float | None,
                      stop_reason: str = "max_epochs", optimizer: str = "src.optim.KerasSGD", lr: float = 0.01,
                      environment: dict | None = None, data: dict | None = None) -> None:
    """A results.json as a run leaves it; validation accuracy climbs to just above test accuracy."""
    final = test_acc if test_acc is not None else 0.1
    history = [
        {"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.0 / e, "val_acc": final * (0.8 + 0.05 * e)}
        for e in (1, 2, 3, 4)
    ]
    run_dir = sweep_dir / config / f"seed_{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({
        "config": config, "run_dir": str(run_dir), "stop_reason": stop_reason,
        "hparams": {"optimizer": optimizer, "optimizer_args": {"lr": lr, "momentum": 0.0, "nesterov": False},
                    "decay": 1e-6, "loss": "cross_entropy", "seed": seed},
        "epochs": 4, "best_val_acc": max(h["val_acc"] for h in history), "best_epoch": 4, "test_acc": test_acc,
        "test_loss": 1.0, "wall_time_s": 100.0 + seed, "train_images_per_s": 1000.0, "history": history,
        "environment": environment or {}, "data": data or {},
    }))


def hashes(*paths: Path) -> dict[str, str]:
    """Every file under ``paths`` (hidden ones too) and its SHA-256."""
    files = [file for path in paths for file in ([path] if path.is_file() else sorted(path.rglob("*")))]
    return {str(file): hashlib.sha256(file.read_bytes()).hexdigest() for file in files if file.is_file()}


def rerun(published: SimpleNamespace, run: str, as_run: str | None = None,
          change: Callable[[RunRecord, dict], None] = lambda record, config: None) -> Path:
    """A run of conftest's ``published`` copy as a sweep ran it again (under ``as_run``), its record
    and config.yaml ``change``d."""
    run_dir = published.sweep / (as_run or run)
    shutil.copytree(published.notebook / run, run_dir)
    record, config = RunRecord.read(run_dir), yaml.safe_load((run_dir / "config.yaml").read_text())
    change(record, config)
    record.write(run_dir)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir
