from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from src import publish
from src.cli import main
from src.export import SUFFIXES, main as export_main
from src.search import open_study, search
from src.sweep import sweep
from src.sweep_record import SWEEP_FILE
from tests.disks import SmallDisk
from tests.synthetic import TRAINED_RUN_EXPERIMENT, quiet_fit_args, write_image_folder, write_run_results

ROOT = Path(__file__).resolve().parent.parent

# The fixtures below that train (``fit`` trains each time a test calls it): every test that uses
# one, directly or through another fixture, is marked slow here, so that a new user of a trained
# run is slow without a mark of its own. Tests that train by themselves carry @pytest.mark.slow.
TRAINING_FIXTURES = {"fit", "trained_run", "exported", "small_sweep", "small_study", "one_epoch_sweep"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINING_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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
    args = [*TRAINED_RUN_EXPERIMENT, "--trainer.max_epochs=2",
            "--trainer.log_every_n_steps=5"]  # the lr is logged within the run's few steps
    main(["fit", *args, *quiet_fit_args(image_folder, data_dir, root)])
    (results,) = (root / "runs").glob("*/version_*/results.json")
    return results.parent


@pytest.fixture(scope="session")
def exported(trained_run: Path) -> dict[str, Path]:
    """``trained_run`` exported by ``python -m src.export`` in each format, to its default path."""
    for fmt in SUFFIXES:
        export_main([str(trained_run), f"--format={fmt}"])
    return {fmt: (trained_run / "model").with_suffix(suffix) for fmt, suffix in SUFFIXES.items()}


@pytest.fixture
def refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Run ``python -m src.cli ARGS`` in-process, expecting a mistake to be refused as it should be:
    exit 2, one ``error:`` paragraph, no traceback, and no run directory under ``tmp_path/runs``.
    Returns stderr."""
    # main() gives the project's logger a handler on the stderr of the moment: this test's
    monkeypatch.setattr(logging.getLogger("src"), "handlers", [])

    def run(*args: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main([*args, f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, err
        assert "Traceback" not in err and err.count("error:") == 1, err
        assert not (tmp_path / "runs").exists()  # refused before anything was written
        return err

    return run


@pytest.fixture
def fit(synthetic_args: list[str], tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run ``python -m src.cli fit`` in-process on the synthetic data; return its results.json."""

    def run(*args: str) -> dict[str, Any]:
        main(["fit", *args, *synthetic_args])
        results = sorted((tmp_path / "runs").glob("*/*/results.json"), key=lambda p: p.stat().st_mtime)
        return json.loads(results[-1].read_text())

    return run


@pytest.fixture(scope="session")
def tiny_run_args(image_folder: Path, data_dir: Path) -> list[str]:
    """Flags a sweep or a study passes to each of its runs: two epochs of six batches on the
    synthetic data, enough for Adam to leave chance level (0.1) far behind."""
    return [
        f"--data.source={image_folder}",
        f"--data.data_dir={data_dir}",
        "--data.val_split=100",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=6",
        "--trainer.enable_model_summary=false",
    ]


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory: pytest.TempPathFactory, tiny_run_args: list[str]) -> SimpleNamespace:
    """``adam``, ``sgd`` and an SGD at lr 1e6 that diverges, 2 seeds each, 2 runs at a time
    (six subprocesses, the most expensive fixture here), with the plan sweep.json recorded for them
    (a later start of the same sweep records its own). Tests must not change its runs."""
    root = tmp_path_factory.mktemp("small_sweep")
    diverging = root / "sgd_lr_1e6.yaml"
    diverging.write_text("model:\n  optimizer:\n    class_path: src.optim.KerasSGD\n    init_args:\n      lr: 1.0e6\n")
    lines: list[str] = []
    outcomes = sweep(["adam", "sgd", str(diverging)], seeds=2, sweep_dir=root / "sweep", overrides=tiny_run_args,
                     parallel=2, progress=lines.append)
    plan = json.loads((root / "sweep" / SWEEP_FILE).read_text())["plan"]
    return SimpleNamespace(dir=root / "sweep", outcomes=outcomes, lines=lines, configs=("adam", "sgd", "sgd_lr_1e6"),
                           plan=plan)


@pytest.fixture(scope="session")
def small_study(tmp_path_factory: pytest.TempPathFactory, tiny_run_args: list[str]) -> SimpleNamespace:
    """Three trials of Adam: lr 1e-3 learns, lr 0 cannot and is pruned after its first epoch
    (the pruner compares it with the finished first trial), then one the sampler picks."""
    root = tmp_path_factory.mktemp("small_study")
    space = root / "adam_lr.yaml"
    space.write_text(
        "config: adam\npruner: {n_startup_trials: 1, n_warmup_steps: 0}\n"
        "space:\n  model.optimizer.lr: {low: 0.0, high: 1.0e-3}\n"
    )
    study_dir = root / "study"
    study_dir.mkdir()
    study = open_study("adam_lr", f"sqlite:///{study_dir / 'study.db'}", {"n_startup_trials": 1, "n_warmup_steps": 0})
    study.enqueue_trial({"model.optimizer.lr": 1e-3})
    study.enqueue_trial({"model.optimizer.lr": 0.0})
    lines: list[str] = []
    study, _ = search(space, n_trials=3, study_dir=study_dir, overrides=tiny_run_args, sampler_seed=0,
                      progress=lines.append)
    return SimpleNamespace(space=space, dir=study_dir, study=study, lines=lines)


@pytest.fixture
def recorded_sweep(tmp_path: Path) -> Path:
    """Results of a sweep written directly: sgd clearly ahead of adam, sgd_nesterov within noise of
    sgd, one rmsprop run diverged."""
    accuracies = {
        "sgd": [0.80, 0.81, 0.79],
        "adam": [0.70, 0.71, 0.69],
        "sgd_nesterov": [0.80, 0.82, 0.77],
        "rmsprop_baseline": [0.75, 0.76, None],
    }
    for config, values in accuracies.items():
        for seed, acc in enumerate(values):
            write_run_results(tmp_path, config, seed, acc, stop_reason="max_epochs" if acc is not None else "diverged")
    return tmp_path


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A copy of the repository's results/, README and performance page, for ``python -m src.publish``
    to publish into: the command's ``--to`` (results/notebook), ``--readme`` and ``--performance_page``
    flags for it, and a sweep folder to fill."""
    notebook, readme = tmp_path / "results" / "notebook", tmp_path / "README.md"
    performance = tmp_path / "docs" / "performance.md"
    shutil.copytree(ROOT / "results", tmp_path / "results")
    shutil.copy(ROOT / "README.md", readme)
    shutil.copytree(ROOT / "docs", performance.parent)
    monkeypatch.setattr(publish, "RESULTS_ROOT", tmp_path / "results")  # whatever it regenerates stays in the copy
    flags = ["--to", str(notebook), "--readme", str(readme), "--performance_page", str(performance)]
    return SimpleNamespace(notebook=notebook, readme=readme, performance=performance, flags=flags,
                           sweep=tmp_path / "sweep")


# Adam 1e-3 on 3 batches an epoch: val_acc 0.2 after the first, 0.68 after the second, a new best
TWO_EPOCHS = [*TRAINED_RUN_EXPERIMENT, "--trainer.limit_train_batches=3", "--trainer.limit_test_batches=1"]


@pytest.fixture(scope="session")
def one_epoch_run(image_folder: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of the first of :data:`TWO_EPOCHS`' epochs, to copy where a test resumes it."""
    root = tmp_path_factory.mktemp("one_epoch")
    main(["fit", *TWO_EPOCHS, "--trainer.max_epochs=1", *quiet_fit_args(image_folder, data_dir, root)])
    return root / "runs" / "default" / "version_0"


@pytest.fixture
def second_epoch(one_epoch_run: Path, image_folder: Path, data_dir: Path, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> Callable[..., SimpleNamespace]:
    """Copies :func:`one_epoch_run` under ``root`` and resumes it for its second epoch, with ``flags``
    added; returns the run directory, the exit status (0 when it ended by itself) and stderr."""
    monkeypatch.setattr(logging.getLogger("src"), "handlers", [])  # main() would add one on this test's stderr

    def resume(root: Path, *flags: str, after_copy: Callable[[], object] = lambda: None) -> SimpleNamespace:
        run_dir = root / "runs" / "default" / "version_0"
        shutil.copytree(one_epoch_run, run_dir)
        after_copy()
        capsys.readouterr()
        try:
            main(["fit", *TWO_EPOCHS, "--trainer.max_epochs=2", "--ckpt_path=last", *flags,
                  *quiet_fit_args(image_folder, data_dir, root)])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        return SimpleNamespace(run_dir=run_dir, code=code, err=capsys.readouterr().err)

    return resume


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmallDisk]:
    """A folder on a disk a test can fill up or make read-only (see tests/disks.py)."""
    disk = SmallDisk(tmp_path / "disk", monkeypatch)
    yield disk
    disk.unmount()
