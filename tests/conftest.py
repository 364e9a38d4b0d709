from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from src.cli import main
from src.export import main as export_main
from tests.synthetic import quiet_fit_args, write_image_folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-shaped image-folder copy: 60 train and 10 test PNGs per class."""
    return write_image_folder(tmp_path_factory.mktemp("cifar10-synthetic"), train_per_class=60, test_per_class=10)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decode cache shared by the whole session (it is keyed by its source)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def synthetic_args(image_folder: Path, data_dir: Path, tmp_path: Path) -> list[str]:
    """CLI flags for a quiet run on the synthetic data, writing under ``tmp_path/runs``."""
    return quiet_fit_args(image_folder, data_dir, tmp_path)


@pytest.fixture(scope="session")
def trained_run(image_folder: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of one small fit that learned the synthetic signal, for the tests that
    need a trained model but not a run of their own (Adam 1e-3, 2 epochs; it reaches val_acc 1.0 in the first)."""
    root = tmp_path_factory.mktemp("trained")
    args = ["--model.optimizer=src.optim.KerasAdam", "--model.optimizer.lr=1e-3", "--trainer.max_epochs=2"]
    main(["fit", *args, *quiet_fit_args(image_folder, data_dir, root)])
    (results,) = (root / "runs").glob("*/version_*/results.json")
    return results.parent


@pytest.fixture(scope="session")
def exported(trained_run: Path) -> dict[str, Path]:
    """``trained_run`` exported by ``python -m src.export`` in each format, to its default path."""
    for fmt in ("torchscript", "onnx"):
        export_main([str(trained_run), f"--format={fmt}"])
    return {"torchscript": trained_run / "model.pt", "onnx": trained_run / "model.onnx"}


@pytest.fixture
def fit(synthetic_args: list[str], tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run ``python -m src.cli fit`` in-process on the synthetic data; return its results.json."""

    def run(*args: str) -> dict[str, Any]:
        main(["fit", *args, *synthetic_args])
        results = sorted((tmp_path / "runs").glob("*/*/results.json"), key=lambda p: p.stat().st_mtime)
        return json.loads(results[-1].read_text())

    return run
