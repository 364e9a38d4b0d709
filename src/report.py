"""``python -m src.report SWEEP_DIR``: one table and a few figures that answer "which setting is
better, and is the difference more than seed noise?"

Reads every ``SWEEP_DIR/<config>/<run>/results.json`` (a sweep's or a study's runs) and the
sweep's ``sweep.json`` for runs that failed without results, and writes ``report.md``,
``report.csv``, ``curves.png`` and ``test_acc.png`` beside them.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none opened

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from scipy import stats

from src.errors import UserInputError
from src.results import FINAL_STOP_REASONS, RESULTS_FILE, RunRecord
from src.keras_notebook import NOTEBOOK
from src.sweep import read_sweep_record

log = logging.getLogger(__name__)
SIGNIFICANCE = 0.05
COLUMNS = (
    "config", "optimizer", "lr", "decay", "momentum", "nesterov", "loss", "runs", "finished", "diverged",
    "pruned", "unfinished", "test_acc_mean", "test_acc_std", "best_val_acc_mean", "best_val_acc_std",
    "epochs_mean", "wall_time_s_mean", "images_per_s_mean", "notebook",
)


@dataclass
class ConfigRuns:
    """All runs of one config (or one study trial)."""

    name: str
    runs: list[RunRecord] = field(default_factory=list)
    failed_without_results: int = 0

    @property
    def finished(self) -> list[RunRecord]:
        """Runs that trained to a normal end and were tested: the ones statistics are made of."""
        return [
            r for r in self.runs
            if r.stop_reason in FINAL_STOP_REASONS - {"diverged", "pruned"} and r.test_acc is not None
        ]

    def count(self, stop_reason: str) -> int:
        return sum(r.stop_reason == stop_reason for r in self.runs)

    @property
    def unfinished(self) -> int:
        """Failed, interrupted or still running."""
        done = len(self.finished) + self.count("diverged") + self.count("pruned")
        return len(self.runs) - done + self.failed_without_results

    def values(self, measure: Callable[[RunRecord], float | None]) -> list[float]:
        """``measure`` of each finished run that has it."""
        return [float(value) for value in map(measure, self.finished) if value is not None]

    @property
    def test_accuracies(self) -> list[float]:
        return self.values(lambda r: r.test_acc)


def collect(sweep_dir: Path) -> list[ConfigRuns]:
    """The runs under ``sweep_dir``, grouped by config name."""
    groups: dict[str, ConfigRuns] = {}
    for path in sorted(sweep_dir.glob(f"*/*/{RESULTS_FILE}")):
        try:
            record = RunRecord.read(path)
        except (OSError, ValueError) as err:  # one damaged file must not cost the report on all the others
            log.warning("warning: left out %s, which is not a readable run record (%s); counted as unfinished", path, err)
            groups.setdefault(path.parent.parent.name, ConfigRuns(path.parent.parent.name)).failed_without_results += 1
            continue
        name = record.config or path.parent.parent.name
        groups.setdefault(name, ConfigRuns(name)).runs.append(record)
    try:
        outcomes = read_sweep_record(sweep_dir)["runs"]
    except ValueError as err:  # it only adds the failed runs that left no results: report the others
        log.warning("warning: %s; runs that failed without results are not counted", err)
        outcomes = {}
    for outcome in outcomes.values():
        if outcome.get("status") == "failed" and not (Path(outcome["run_dir"]) / RESULTS_FILE).is_file():
            groups.setdefault(outcome["config"], ConfigRuns(outcome["config"])).failed_without_results += 1
    if not groups:
        raise UserInputError(f"No runs found in {sweep_dir}: expected <config>/<run>/{RESULTS_FILE} files there.")
    return list(groups.values())


def summarize(groups: list[ConfigRuns]) -> list[dict]:
    """One row per config, best mean test accuracy first."""
    rows = []
    for group in groups:
        first = group.runs[0] if group.runs else RunRecord()
        test_acc = group.test_accuracies
        val_acc = group.values(lambda r: r.best_val_acc)
        rows.append({
            "config": group.name,
            "optimizer": str(first.optimizer or "").rsplit(".", 1)[-1],
            "lr": first.optimizer_args.get("lr"),
            "decay": first.hparams.get("decay"),
            "momentum": first.optimizer_args.get("momentum"),
            "nesterov": first.optimizer_args.get("nesterov"),
            "loss": first.hparams.get("loss"),
            "runs": len(group.runs) + group.failed_without_results,
            "finished": len(group.finished),
            "diverged": group.count("diverged"),
            "pruned": group.count("pruned"),
            "unfinished": group.unfinished,
            "test_acc_mean": _mean(test_acc),
            "test_acc_std": _std(test_acc),
            "best_val_acc_mean": _mean(val_acc),
            "best_val_acc_std": _std(val_acc),
            "epochs_mean": _mean(group.values(lambda r: r.epochs)),
            "wall_time_s_mean": _mean(group.values(lambda r: r.wall_time_s)),
            "images_per_s_mean": _mean(group.values(lambda r: r.train_images_per_s)),
            "notebook": NOTEBOOK.get(group.name, (None, ""))[1],
        })
    return sorted(rows, key=lambda row: -row["test_acc_mean"] if row["test_acc_mean"] is not None else math.inf)


@dataclass
class Comparison:
    better: str
    worse: str
    difference: float  # in accuracy (0..1), better minus worse
    p_value: float

    @property
    def beyond_noise(self) -> bool:
        return self.p_value < SIGNIFICANCE


def compare(groups: list[ConfigRuns]) -> list[Comparison]:
    """Welch's t-test on test accuracy for every two configs with at least two finished runs."""
    testable = [g for g in groups if len(g.finished) >= 2]
    comparisons = []
    for a, b in combinations(testable, 2):
        x, y = a.test_accuracies, b.test_accuracies
        if np.mean(x) < np.mean(y):
            (a, x), (b, y) = (b, y), (a, x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # zero spread in both: p is 0 or nan
            p_value = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
        p_value = 1.0 if math.isnan(p_value) else p_value  # nan: the same value in every run of both
        comparisons.append(Comparison(a.name, b.name, float(np.mean(x) - np.mean(y)), p_value))
    return sorted(comparisons, key=lambda c: c.p_value)


def markdown(rows: list[dict], comparisons: list[Comparison], groups: list[ConfigRuns]) -> str:
    header = ("config", "optimizer", "lr", "decay", "momentum", "nesterov", "loss", "runs", "test acc %",
              "best val acc %", "epochs", "wall time", "images/s", "notebook")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = (
            f"`{row['config']}`", row["optimizer"], _number(row["lr"]), _number(row["decay"]),
            _number(row["momentum"]), _number(row["nesterov"]), _number(row["loss"]), _runs(row),
            _percent(row["test_acc_mean"], row["test_acc_std"]),
            _percent(row["best_val_acc_mean"], row["best_val_acc_std"]),
            _number(row["epochs_mean"], ".3g"), _duration(row["wall_time_s_mean"]),
            _number(row["images_per_s_mean"], ".0f"),
            row["notebook"] or "–",
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    counts = [len(g.finished) for g in groups if len(g.finished) >= 2]
    seeds = f"{min(counts, default=0)}" + (f" to {max(counts)}" if counts and max(counts) > min(counts) else "")
    text = [
        "# Sweep report", "",
        "Sorted by mean test accuracy (± one standard deviation over seeds). Statistics use the runs that trained "
        "to a normal end; diverged, pruned and unfinished (failed, interrupted, running) runs are counted in `runs` "
        "and left out of the means. `notebook` is the 2017 notebook's single run.", "",
        *lines, "",
        "## Differences beyond seed noise", "",
    ]
    if not comparisons:
        text.append("No two configs have two or more finished runs each, so seed noise cannot be measured: "
                    "run more seeds (`--seeds 3`).")
    else:
        beyond = [c for c in comparisons if c.beyond_noise]
        within = [c for c in comparisons if not c.beyond_noise]
        text += [
            f"Welch's t-test on test accuracy, every pair of configs with two or more finished runs ({seeds} each); "
            f"p < {SIGNIFICANCE} counts as more than seed noise. With few seeds only large, consistent gaps "
            f"pass, and among many pairs about one in {round(1 / SIGNIFICANCE)} passes by chance alone.", "",
            "**Differ by more than seed noise:**" if beyond else "**No pair differs by more than seed noise.**", "",
            *[f"- `{c.better}` beats `{c.worse}` by {100 * c.difference:.1f} points (p = {c.p_value:.2g})"
              for c in beyond],
        ]
        if within:
            text += [
                "", "**Within seed noise (no real difference shown):**", "",
                *[f"- `{c.better}` and `{c.worse}`: {100 * c.difference:.1f} points apart (p = {c.p_value:.2g})"
                  for c in within],
            ]
    text += ["", "## Where these ran", "", *where_they_ran(groups)]
    return "\n".join(text).rstrip() + "\n"


def where_they_ran(groups: list[ConfigRuns]) -> list[str]:
    """The machines, precisions, code and data behind the runs, with the run time each machine
    gave: what a reader needs to weigh the numbers and to know what rerunning them costs."""
    runs = [run for group in groups for run in group.runs]
    machines: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        env = run.environment
        key = (env.get("device"), env.get("cpu"), env.get("cpu_count"), ", ".join(env.get("cpu_flags", [])),
               env.get("precision"), env.get("torch"))
        machines.setdefault(key, []).append(run)
    header = ("device", "CPU", "cores", "CPU flags", "precision", "torch", "runs", "run time", "per epoch")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for key, members in machines.items():
        seconds = sum(run.wall_time_s or 0.0 for run in members)
        epochs = sum(run.epochs for run in members)
        per_epoch = _duration(seconds / epochs if epochs else None)
        lines.append("| " + " | ".join(_number(v) if v != "" else "–" for v in key)
                     + f" | {len(members)} | {_duration(seconds)} | {per_epoch} |")
    total = sum(run.wall_time_s or 0.0 for run in runs)
    commits = sorted({str(run.environment.get("git_commit", ""))[:7] for run in runs} - {""})
    data = sorted({_data_description(run.data) for run in runs if run.data})
    return [
        *lines, "",
        f"Run time is each run's own wall time, its resumes included, {_duration(total)} over all "
        f"{len(runs)} runs; runs that shared a machine overlap, so the sweep took less time than that. "
        "Per epoch is that run time over the epochs trained, start-up and the test included: what one "
        "epoch cost on that machine, as the sweep shared it out.",
        *([f"Code: commit {', '.join(commits)}."] if commits else []),
        *([f"Data: {'; '.join(data)}."] if data else []),
    ]


def _data_description(data: dict) -> str:
    counts = ", ".join(f"{data[f'{split}_images']:,} {split}" for split in ("train", "val", "test")
                       if data.get(f"{split}_images"))
    source = Path(str(data.get("source") or "torchvision's CIFAR-10")).name
    stopping = "early stopping on the test set" if data.get("validates_on_test") else "held-out validation"
    return f"`{source}` ({counts} images; {stopping})"


def _epoch_matrix(group: ConfigRuns, key: str) -> np.ndarray:
    """runs × epochs, NaN where a run had stopped (or had no value)."""
    longest = max((len(r.history) for r in group.runs), default=0)
    matrix = np.full((len(group.runs), longest), np.nan)
    for i, run in enumerate(group.runs):
        for j, epoch in enumerate(run.history):
            value = epoch.get(key)
            matrix[i, j] = np.nan if value is None else value
    return matrix


def plot_curves(groups: list[ConfigRuns]) -> Figure:
    """Validation accuracy and loss per epoch: one line per config (mean over its runs) with a
    ±1 standard deviation band where it has two or more."""
    figure, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    stage_mark = None
    colors = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for index, group in enumerate(groups):
        label = group.name + (f" ({group.count('diverged')} diverged)" if group.count("diverged") else "")
        # each quantity with the range it can take, so that a ±1 std band never leaves it
        for ax, key, scale, low, high in ((axes[0], "val_acc", 100.0, 0.0, 100.0), (axes[1], "val_loss", 1.0, 0.0, None)):
            matrix = _epoch_matrix(group, key) * scale
            if matrix.size == 0:
                continue
            epochs = np.arange(1, matrix.shape[1] + 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # epochs no run reached
                mean, std = np.nanmean(matrix, axis=0), np.nanstd(matrix, axis=0, ddof=1)
            ax.plot(epochs, mean, marker="o" if len(epochs) < 15 else None, color=colors(index), label=label)
            if len(group.runs) > 1:
                band = np.clip(mean - std, low, high), np.clip(mean + std, low, high)
                ax.fill_between(epochs, *band, color=colors(index), alpha=0.2, linewidth=0)
            if key == "val_acc":  # a staged run stays one line; where each of its stages began is marked on it
                starts = sorted({epoch for run in group.runs for epoch in _stage_starts(run)})
                if starts:
                    stage_mark = ax.scatter(starts, mean[np.array(starts) - 1], marker="v", s=45,
                                            color=colors(index), edgecolors="black", linewidths=0.6, zorder=3)
    axes[0].set(title="Validation accuracy", xlabel="epoch", ylabel="val accuracy (%)")
    axes[1].set(title="Validation loss", xlabel="epoch", ylabel="val loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = axes[1].get_legend_handles_labels()
    if stage_mark is not None:  # one legend entry for the marks of every staged config
        handles.append(stage_mark)
        labels.append("a new lr stage begins")
    axes[1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), title="config")
    figure.suptitle("Per epoch: mean over seeds, band ±1 std")
    return figure


def _stage_starts(run: RunRecord) -> list[int]:
    """Epochs (from 1) that began a new learning-rate stage: lr cut fivefold or more from one epoch to
    the next. Keras' decay never does that: it at most halves lr between two epochs' ends."""
    rates = [epoch.get("lr") for epoch in run.history]
    return [i + 1 for i in range(1, len(rates)) if rates[i] and rates[i - 1] and rates[i] <= 0.2 * rates[i - 1]]


def plot_test_acc(rows: list[dict], groups: list[ConfigRuns]) -> Figure:
    """Test accuracy per config, best at the top: mean ± std, each seed as a dot, and the
    notebook's single run where it is comparable."""
    by_name = {g.name: g for g in groups}
    figure, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(rows)), layout="constrained")
    positions = np.arange(len(rows))[::-1]
    labels = []
    for y, row in zip(positions, rows):
        group = by_name[row["config"]]
        labels.append(row["config"] + ("" if group.finished else f" ({_runs(row)})"))
        values = 100 * np.array(group.test_accuracies)
        if values.size:
            ax.scatter(values, np.full(values.size, y), color="0.35", s=18, zorder=2, label="single seed")
        if values.size > 1:  # with one seed there is no spread to show
            ax.errorbar(values.mean(), y, xerr=values.std(ddof=1), fmt="o", color="C0", capsize=4, zorder=3,
                        label="mean ± std over seeds")
        notebook = NOTEBOOK.get(row["config"], (None, ""))[0]
        if notebook is not None:
            ax.scatter(100 * notebook, y, marker="x", color="C3", zorder=3, label="notebook (2017, one full run)")
    ax.set_yticks(positions, labels)
    ax.set(xlabel="test accuracy (%)", title="Test accuracy per config, best first")
    ax.grid(axis="x", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))  # one entry per kind of mark
    if unique:
        ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return figure


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the report files for ``sweep_dir`` (into it, by default); return their paths."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserInputError(f"{sweep_dir} is not a directory; give the directory a sweep or a study wrote.")
    out = Path(out_dir) if out_dir else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    groups = collect(sweep_dir)
    rows = summarize(groups)
    paths = {name: out / name for name in ("report.md", "report.csv", "curves.png", "test_acc.png")}
    paths["report.md"].write_text(markdown(rows, compare(groups), groups))
    with open(paths["report.csv"], "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    for name, figure in (("curves.png", plot_curves(groups)), ("test_acc.png", plot_test_acc(rows, groups))):
        figure.savefig(paths[name], dpi=110)
        plt.close(figure)
    return paths


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _std(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _number(value: object, spec: str = "g") -> str:
    if value is None:
        return "–"
    return format(value, spec) if isinstance(value, float) else str(value)


def _percent(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _runs(row: dict) -> str:
    notes = [f"{row[key]} {key}" for key in ("diverged", "pruned", "unfinished") if row[key]]
    return f"{row['runs']}" + (f" ({', '.join(notes)})" if notes else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.report", description="Report on a sweep's or a study's runs.")
    parser.add_argument("sweep_dir", help="the directory python -m src.sweep or src.search wrote")
    parser.add_argument("--out", help="where to write the report (default: the sweep directory)")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.sweep_dir, args.out)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(paths["report.md"].read_text())
    print("written:", ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
