"""A sweep's runs grouped by config, summed up over seeds, and compared: is a difference between two
configs more than seed noise?"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import stats

from src.errors import UserInputError
from src.keras_notebook import NOTEBOOK, NotebookFigure
from src.results import RESULTS_FILE, RunRecord
from src.sweep_record import read_sweep_record

log = logging.getLogger(__name__)
SIGNIFICANCE = 0.05
CONFIDENCE = 0.95  # of the prediction interval that says whether one more run could give a figure
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
        return [r for r in self.runs if r.is_complete and r.stop_reason not in ("diverged", "pruned")]

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
            "notebook": NOTEBOOK[group.name].text if group.name in NOTEBOOK else "",
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


def within_seed_noise(values: list[float], claimed: float, claimed_high: float | None = None) -> str:
    """Whether one more run of ours could plausibly have given ``claimed`` (accuracies in %): inside
    the 95% prediction interval ``mean ± t·s·√(1 + 1/n)`` of our runs (``claimed`` is itself one run:
    the notebook's, or one stopped on the test set). The interval is shown too: with few seeds it is
    wide, and a "yes" says little. A figure known only as a range (``claimed`` to ``claimed_high``:
    the notebook's "~40%") is inside or outside only as a whole; one that straddles the interval's
    edge is "partly"."""
    if len(values) < 2:
        return "– (needs 2 seeds)"
    n = len(values)
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    half_width = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std * math.sqrt(1 + 1 / n)
    low, high = mean - half_width, mean + half_width
    interval = f"{max(low, 0.0):.1f}–{min(high, 100.0):.1f}"
    claimed_low, claimed_high = claimed, claimed if claimed_high is None else claimed_high
    if low <= claimed_low and claimed_high <= high:
        return f"yes ({interval})"
    if claimed_high < low or claimed_low > high:
        return f"no, {'above' if claimed_low > mean else 'below'} {interval}"
    return f"partly: its range {claimed_low:.1f}–{claimed_high:.1f} straddles {interval}"


def notebook_within_seed_noise(values: list[float], figure: NotebookFigure) -> str:
    """:func:`within_seed_noise` for the notebook's figure (accuracies in %), a range where it gave one in words."""
    if figure.bounds is None:
        return "– (the notebook gave no figure)"
    low, high = figure.bounds
    return within_seed_noise(values, 100 * low, 100 * high if high != low else None)


def mean_std(values: list[float], digits: int = 1, count: bool = False) -> str:
    """``77.4 ± 0.2`` over seeds (one value alone, no spread), ``(n=3)`` added with ``count``; "–" for none."""
    if not values:
        return "–"
    spread = f" ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{np.mean(values):.{digits}f}{spread}" + (f" (n={len(values)})" if count else "")


def runs_cell(row: dict) -> str:
    """``3 (1 diverged)``: a summary row's runs, and those its statistics leave out."""
    notes = [f"{row[key]} {key}" for key in ("diverged", "pruned", "unfinished") if row[key]]
    return f"{row['runs']}" + (f" ({', '.join(notes)})" if notes else "")


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _std(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None
