"""Run a config, a sweep or a study from Jupyter and get the results back as a table.

Each run is a subprocess writing to its own ``train.log``, so the notebook receives one line
per run start and end (and per epoch for :func:`run_config`), never one per step: the 2017
notebook died of "IOPub message rate exceeded". Runs that already finished are not run
again, so re-executing a cell reads its results instead of retraining::

    from src.notebook import run_config, run_sweep, run_study
    run_sweep(["sgd", "adam"], seeds=3, overrides=["--trainer.max_epochs=20"])

One config may be given as its name alone (``run_sweep("sgd")``) and the overrides as one string,
split as a shell splits it (``overrides="--trainer.max_epochs 20"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from src.comparison import collect, summarize
from src.errors import UserInputError
from src.packing import whole_number
from src.report import write_report
from src.results import RunRecord, read_record
from src.run_args import run_arguments
from src.search import search
from src.run_process import Progress, print_line
from src.sweep import sweep


def table(rows: list[dict]) -> Any:
    """A pandas DataFrame when pandas is installed, else the list of dicts itself."""
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)


def _run_row(outcome: dict) -> dict:
    record = read_record(Path(outcome["run_dir"])) or RunRecord()  # a run that failed before writing one
    return {
        "config": outcome["config"], "seed": outcome["seed"], "status": outcome["status"],
        "optimizer": record.optimizer, "lr": record.optimizer_args.get("lr"), "decay": record.hparams.get("decay"),
        "stop_reason": record.stop_reason, "epochs": record.epochs, "best_val_acc": record.best_val_acc,
        "best_epoch": record.best_epoch, "test_acc": record.test_acc, "test_loss": record.test_loss,
        "wall_time_s": record.wall_time_s, "train_images_per_s": record.train_images_per_s,
        "run_dir": outcome["run_dir"],
    }


def run_config(
    config: str | Path, seed: int = 42, overrides: str | Sequence[str] = (), save_dir: str | Path = "runs/notebook",
    progress: Progress = print_line,
) -> Any:
    """Train one config (a name in ``configs/`` or a YAML path) with one seed; one row."""
    if not isinstance(config, (str, Path)):
        raise UserInputError(f"run_config trains one config, given by its name or path; got {config!r}. "
                             "For several, use run_sweep.")
    outcomes = sweep(config, seeds=1, first_seed=whole_number(seed, "seed"), sweep_dir=save_dir, overrides=overrides,
                     progress=progress, epoch_progress=True)
    return table([_run_row(o) for o in outcomes])


def run_sweep(
    configs: str | Path | Iterable[str | Path] | None = None, seeds: int = 3, sweep_dir: str | Path = "runs/sweep",
    overrides: str | Sequence[str] = (), parallel: int | str = "auto", progress: Progress = print_line,
) -> Any:
    """Run a sweep (default: every notebook experiment, ``parallel`` at once, by default as many as
    the machine allows), write its report and return the report's table: one row per config, best
    test accuracy first."""
    sweep(configs, seeds=seeds, sweep_dir=sweep_dir, overrides=overrides, parallel=parallel, progress=progress)
    paths = write_report(sweep_dir)
    progress(f"report: {paths['report.md']}")
    return table(summarize(collect(Path(sweep_dir))))


def run_study(
    space: str | Path, n_trials: int = 20, study_dir: str | Path | None = None, storage: str | None = None,
    overrides: str | Sequence[str] = (), parallel: int | str = 1, progress: Progress = print_line,
) -> Any:
    """Add ``n_trials`` trials to the study ``space`` declares; one row per trial of the study.
    ``value`` is a trial's best ``val_acc``, or for a pruned trial its last."""
    study, _ = search(space, n_trials, study_dir=study_dir, storage=storage, overrides=run_arguments(overrides),
                      parallel=parallel, progress=progress)
    rows = []
    for trial in study.trials:
        record = read_record(Path(trial.user_attrs["run_dir"])) if "run_dir" in trial.user_attrs else None
        rows.append({
            "trial": trial.number, "state": trial.state.name.lower(), "value": trial.value, **trial.params,
            "pruned_at_epoch": trial.user_attrs.get("pruned_at_epoch"),
            "test_acc": record.test_acc if record else None, "run_dir": trial.user_attrs.get("run_dir"),
        })
    return table(rows)
