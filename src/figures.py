"""The report's figures: per-epoch curves over seeds, and test accuracy per config beside the notebook's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none opened

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from src.comparison import ConfigRuns, runs_cell
from src.files import atomic_file
from src.keras_notebook import NOTEBOOK
from src.results import RunRecord

MAX_COLUMNS = 6  # panels in a row; more configs than this get a row (or more) per optimizer family
# what the legend calls each kind of artist
MEAN, BAND, ALONE = "mean over seeds, while every seed runs", "±1 std", "one seed, once another had stopped"
ONE_RUN, STAGE = "one run", "a run begins a new lr stage"
COLOR = "C0"  # one for every panel: panels, not colours, tell configs apart, so the legend fits each


@dataclass(frozen=True)
class Quantity:
    """One per-epoch measure, with the range it can take, so that a ±1 std band never leaves it."""

    key: str
    name: str
    scale: float
    low: float
    high: float | None


def _epoch_matrix(runs: list[RunRecord], key: str) -> np.ndarray:
    """runs × epochs, NaN where a run had stopped (or had no value)."""
    longest = max((len(r.history) for r in runs), default=0)
    matrix = np.full((len(runs), longest), np.nan)
    for i, run in enumerate(runs):
        matrix[i, :len(run.history)] = [np.nan if epoch.get(key) is None else epoch[key] for epoch in run.history]
    return matrix


def _family(group: ConfigRuns) -> str:
    """The optimizer family of a config's runs (``src.optim.KerasRMSprop`` → ``RMSprop``)."""
    name = next((run.optimizer for run in group.runs if run.optimizer), None)
    return name.rsplit(".", 1)[-1].removeprefix("Keras") if name else "other"


def _layout(groups: list[ConfigRuns]) -> list[list[ConfigRuns]]:
    """Rows of panels: one row while the configs fit in it, else by optimizer family, each family whole
    in the first row with room for it."""
    if len(groups) <= MAX_COLUMNS:
        return [groups]
    families: dict[str, list[ConfigRuns]] = {}
    for group in groups:
        families.setdefault(_family(group), []).append(group)
    rows: list[list[ConfigRuns]] = []
    for members in families.values():
        for i in range(0, len(members), MAX_COLUMNS):
            part = members[i:i + MAX_COLUMNS]
            row = next((row for row in rows if len(row) + len(part) <= MAX_COLUMNS), None)
            row.extend(part) if row is not None else rows.append(part)
    return rows


def _held_out_name(groups: list[ConfigRuns]) -> str:
    """What the runs validated on: "test" where every run did so on the test set (the notebook's
    protocol, whose "val" curves are test curves), "validation" where none did."""
    flags = {bool(run.data.get("validates_on_test")) for group in groups for run in group.runs}
    return "validation" if True not in flags else "test" if flags == {True} else "validation or test"


def plot_curves(groups: list[ConfigRuns], subject: str = "") -> Figure:
    """Accuracy and loss per epoch as small multiples: a panel per config (accuracy above its loss),
    all on one x and one y scale, so that configs compare across panels as they would on one axis,
    without a dozen curves tangled in the same few points. Within a panel the mean and its ±1 std
    band run only while every seed runs (a mean of fewer seeds would jump where one stops), then
    each seed that ran on is a thin line of its own; where a seed began a new lr stage is marked on
    that seed's own value. After one epoch, each panel has one mark with its ±1 std as a bar."""
    drawn = [group for group in groups if any(run.history for run in group.runs)]
    rows = _layout(drawn)
    columns = max(1, *(len(row) for row in rows))
    figure = plt.figure(figsize=(max(8.5, 2.2 + 2.6 * columns), 1.4 + 4.2 * len(rows)), layout="constrained")
    grid = figure.add_gridspec(2 * len(rows) + 1, columns, height_ratios=[2.2, 1] * len(rows) + [0.3])
    held_out = _held_out_name(drawn)
    quantities = (Quantity("val_acc", f"{held_out} accuracy (%)", 100.0, 0.0, 100.0),
                  Quantity("val_loss", f"{held_out} loss", 1.0, 0.0, None))
    panels: list[tuple[Axes, Axes]] = []  # all share the first one's epochs, accuracy and loss scales
    for r, row in enumerate(rows):
        for c, group in enumerate(row):
            first = panels[0] if panels else (None, None)
            accuracy = figure.add_subplot(grid[2 * r, c], sharex=first[0], sharey=first[0])
            panels.append((accuracy, figure.add_subplot(grid[2 * r + 1, c], sharex=accuracy, sharey=first[1])))
            for ax, quantity in zip(panels[-1], quantities):
                _draw_config(ax, group, quantity)
            _dress_panel(panels[-1], group, quantities, first_column=c == 0)
    if max((len(run.history) for group in drawn for run in group.runs), default=0) == 1:
        panels[0][0].set(xlim=(0.5, 1.5), xticks=[1])  # one epoch: its tick alone, with room for the marks
    elif panels:
        panels[0][0].xaxis.get_major_locator().set_params(integer=True)
    _legend(figure.add_subplot(grid[-1, :]), panels)
    figure.suptitle(_curves_title(drawn, held_out, subject))
    return figure


def _draw_config(ax: Axes, group: ConfigRuns, quantity: Quantity) -> None:
    runs = [run for run in group.runs if run.history]
    matrix = _epoch_matrix(runs, quantity.key) * quantity.scale
    if matrix.shape[1] == 1:  # no line to draw, no band to spread: a mark with its ±1 std as a bar
        _draw_one_epoch(ax, matrix[:, 0], quantity)
        return
    style = {"color": COLOR, **({"marker": "o", "markersize": 3} if matrix.shape[1] < 15 else {})}
    if len(runs) == 1:
        ax.plot(np.arange(1, matrix.shape[1] + 1), matrix[0], label=ONE_RUN, **style)
    else:
        shared = int(np.isfinite(matrix).all(axis=0).cumprod().sum())  # the leading epochs every seed ran
        if shared:
            epochs, mean, std = np.arange(1, shared + 1), matrix[:, :shared].mean(0), matrix[:, :shared].std(0, ddof=1)
            ax.plot(epochs, mean, linewidth=1.8, label=MEAN, **style)
            ax.fill_between(epochs, *_clipped(mean - std, mean + std, quantity), color=COLOR, alpha=0.25,
                            linewidth=0, label=BAND)
        _draw_survivors(ax, matrix, shared)
    if quantity.key == "val_acc":
        _mark_stages(ax, runs, matrix)


def _draw_survivors(ax: Axes, matrix: np.ndarray, shared: int) -> None:
    """Each seed that ran past the ``shared`` epochs, thin, from the last shared epoch on, so that it
    starts where the mean ends."""
    for values in matrix:
        last = np.flatnonzero(np.isfinite(values))[-1:] + 1  # the seed's last epoch, counted from 1
        if last.size and last[0] > shared:
            start = max(shared, 1)
            ax.plot(np.arange(start, last[0] + 1), values[start - 1:last[0]], color=COLOR, linewidth=0.8,
                    label=ALONE)


def _draw_one_epoch(ax: Axes, values: np.ndarray, quantity: Quantity) -> None:
    values = values[np.isfinite(values)]
    mean, spread = values.mean(), None
    if values.size > 1:
        std = values.std(ddof=1)
        low, high = _clipped(mean - std, mean + std, quantity)
        spread = [[mean - low], [high - mean]]
    ax.errorbar([1], [mean], yerr=spread, fmt="o", markersize=8, capsize=5, color=COLOR,
                label="mean over seeds, ±1 std as a bar" if spread else ONE_RUN)


def _clipped(low, high, quantity: Quantity) -> tuple:
    """``low`` and ``high`` (numbers or arrays) within the range the quantity can take."""
    return np.clip(low, quantity.low, quantity.high), np.clip(high, quantity.low, quantity.high)


def _mark_stages(ax: Axes, runs: list[RunRecord], matrix: np.ndarray) -> None:
    """One mark per seed per stage it began, on that seed's own accuracy at that epoch."""
    marks = [(epoch, matrix[i, epoch - 1]) for i, run in enumerate(runs) for epoch in _stage_starts(run)]
    if marks:
        ax.scatter(*zip(*marks), marker="v", s=40, color=COLOR, edgecolors="black", linewidths=0.6, zorder=3,
                   label=STAGE)


def _stage_starts(run: RunRecord) -> list[int]:
    """Epochs (from 1) that began a new learning-rate stage: lr cut fivefold or more from one epoch to
    the next. Keras' decay never does that: it at most halves lr between two epochs' ends."""
    rates = [epoch.get("lr") for epoch in run.history]
    return [i + 1 for i in range(1, len(rates)) if rates[i] and rates[i - 1] and rates[i] <= 0.2 * rates[i - 1]]


def _dress_panel(pair: tuple[Axes, Axes], group: ConfigRuns, quantities: tuple[Quantity, ...],
                 first_column: bool) -> None:
    runs = [run for run in group.runs if run.history]
    notes = [ONE_RUN if len(runs) == 1 else f"{len(runs)} seeds"]
    notes += [f"{group.count('diverged')} diverged"] if group.count("diverged") else []
    pair[0].set_title(f"{group.name}\n({', '.join(notes)})", fontsize="medium")
    pair[0].tick_params(labelbottom=False)  # the loss beneath shares its epochs
    pair[1].set_xlabel("epoch")
    for ax, quantity in zip(pair, quantities):
        ax.grid(alpha=0.3)
        if first_column:
            ax.set_ylabel(quantity.name)
        else:
            ax.tick_params(labelleft=False)


def _legend(ax: Axes, panels: list[tuple[Axes, Axes]]) -> None:
    """Below the panels, one entry per kind of artist drawn in some panel, and only those."""
    entries: dict[str, object] = {}
    for panel in (panel for pair in panels for panel in pair):
        for handle, label in zip(*panel.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    ax.axis("off")
    if entries:
        ax.legend(entries.values(), entries.keys(), loc="center", ncols=min(len(entries), max(2, len(panels))),
                  frameon=False)


def _curves_title(groups: list[ConfigRuns], held_out: str, subject: str) -> str:
    counts = {len([run for run in group.runs if run.history]) for group in groups}
    how = ("one run per config" if counts == {1} else
           "mean over seeds with a ±1 std band while every seed runs, then each seed on its own")
    where = " (the test set was their validation set, as in the notebook)" if held_out == "test" else ""
    return f"{subject + ': ' if subject else ''}{held_out.capitalize()} accuracy and loss per epoch{where}\n{how}"


SEED_OFFSET = 0.2  # rows apart: a config's seeds sit below its mean and the notebook's mark


def plot_test_acc(rows: list[dict], groups: list[ConfigRuns], subject: str = "") -> Figure:
    """Test accuracy per config, best at the top: mean ± std, each seed as a dot just below it, and
    the notebook's single run where it is comparable."""
    by_name = {g.name: g for g in groups}
    figure, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(rows)), layout="constrained")
    positions = np.arange(len(rows))[::-1]
    labels, one_run_each = [], all(len(group.finished) <= 1 for group in groups)
    seed_label = ONE_RUN if one_run_each else "each seed"
    for y, row in zip(positions, rows):
        group = by_name[row["config"]]
        labels.append(row["config"] + ("" if group.finished else f" ({runs_cell(row)})"))
        values = 100 * np.array(group.test_accuracies)
        if values.size:  # just below the row, where the mean's mark cannot hide a seed that sits on it
            ax.scatter(values, np.full(values.size, y - SEED_OFFSET), color="0.3", s=14, zorder=2, label=seed_label)
        if values.size > 1:  # with one seed there is no spread to show
            ax.errorbar(values.mean(), y, xerr=values.std(ddof=1), fmt="o", color="C0", capsize=4, zorder=3,
                        label="mean ± std over seeds")
        notebook = NOTEBOOK.get(row["config"])
        if notebook and notebook.exact is not None:  # drawn over our mean, which it can sit right on
            ax.scatter(100 * notebook.exact, y, marker="x", color="C3", zorder=4, label="notebook (2017, one full run)")
        elif notebook and notebook.bounds:  # "~40%": the range its words allow
            ax.hlines(y, *(100 * v for v in notebook.bounds), color="C3", linewidth=3, alpha=0.6, zorder=4,
                      label="notebook (2017, one run, given in words: the range they allow)")
    ax.set_yticks(positions, labels)
    notes = [ONE_RUN + " per config"] if one_run_each else []
    notes += ["early-stopped on the test set itself, as the notebook did"] if _held_out_name(groups) == "test" else []
    title = f"{subject + ': ' if subject else ''}Test accuracy per config, best first"
    ax.set(xlabel="test accuracy (%)", title="\n".join([title, "; ".join(notes)] if notes else [title]),
           ylim=(-0.5 - SEED_OFFSET, len(rows) - 0.5))
    ax.grid(axis="x", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))  # one entry per kind of mark
    if unique:
        ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return figure


def write_figures(rows: list[dict], groups: list[ConfigRuns], out: Path, subject: str = "") -> dict[str, Path]:
    """``curves.png`` and ``test_acc.png`` in ``out``, each whole or not at all; ``subject`` heads their titles."""
    paths = {}
    for name, figure in (("curves.png", plot_curves(groups, subject)),
                         ("test_acc.png", plot_test_acc(rows, groups, subject))):
        paths[name] = out / name
        try:
            with atomic_file(paths[name], "wb") as file:
                figure.savefig(file, format="png", dpi=110)
        finally:
            plt.close(figure)
    return paths
