"""The report's figures: per-epoch curves over seeds, and test accuracy per config beside the notebook's."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none opened

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from src.comparison import ConfigRuns, runs_cell
from src.keras_notebook import NOTEBOOK
from src.results import RunRecord, atomic_file


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
        labels.append(row["config"] + ("" if group.finished else f" ({runs_cell(row)})"))
        values = 100 * np.array(group.test_accuracies)
        if values.size:
            ax.scatter(values, np.full(values.size, y), color="0.35", s=18, zorder=2, label="single seed")
        if values.size > 1:  # with one seed there is no spread to show
            ax.errorbar(values.mean(), y, xerr=values.std(ddof=1), fmt="o", color="C0", capsize=4, zorder=3,
                        label="mean ± std over seeds")
        notebook = NOTEBOOK.get(row["config"], (None, ""))[0]
        if notebook is not None:  # drawn over our mean, which it can sit right on (decay 1e-2)
            ax.scatter(100 * notebook, y, marker="x", color="C3", zorder=4, label="notebook (2017, one full run)")
    ax.set_yticks(positions, labels)
    ax.set(xlabel="test accuracy (%)", title="Test accuracy per config, best first")
    ax.grid(axis="x", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))  # one entry per kind of mark
    if unique:
        ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return figure


def write_figures(rows: list[dict], groups: list[ConfigRuns], out: Path) -> dict[str, Path]:
    """``curves.png`` and ``test_acc.png`` in ``out``, each whole or not at all."""
    paths = {}
    for name, figure in (("curves.png", plot_curves(groups)), ("test_acc.png", plot_test_acc(rows, groups))):
        paths[name] = out / name
        try:
            with atomic_file(paths[name], "wb") as file:
                figure.savefig(file, format="png", dpi=110)
        finally:
            plt.close(figure)
    return paths
