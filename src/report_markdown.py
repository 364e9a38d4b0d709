"""``report.md``'s text: the configs ranked with their seed spread, the pairs that differ by more
than seed noise, and where the runs ran (machines, precisions, code, data, how long it all took),
so that the numbers can be weighed and their cost known. :mod:`src.report` writes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from src.comparison import SIGNIFICANCE, Comparison, ConfigRuns, runs_cell
from src.results import RunRecord


@dataclass(frozen=True)
class Activity:
    """When a sweep's runs trained, by their TensorBoard events: what a resumed or paused sweep took
    from start to end, which no run's own wall time says."""

    first: float  # Unix time of the first event of any run
    last: float  # of the last event of any run
    training_s: float  # seconds in which some run was writing events


def markdown(rows: list[dict], comparisons: list[Comparison], groups: list[ConfigRuns],
             when: Activity | None = None) -> str:
    header = ("config", "optimizer", "lr", "decay", "momentum", "nesterov", "loss", "runs", "test acc %",
              "best val acc %", "epochs", "wall time", "images/s", "notebook")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = (
            f"`{row['config']}`", row["optimizer"], _number(row["lr"]), _number(row["decay"]),
            _number(row["momentum"]), _number(row["nesterov"]), _number(row["loss"]), runs_cell(row),
            percent(row["test_acc_mean"], row["test_acc_std"]),
            percent(row["best_val_acc_mean"], row["best_val_acc_std"]),
            _number(row["epochs_mean"], ".3g"), duration(row["wall_time_s_mean"]),
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
        "and left out of the means. `notebook` is the 2017 notebook's single run. `wall time` is a run's own "
        "(mean over its runs): from the start of its training, data loaded and model built, to the end of its test, "
        "resumes included; the seconds a sweep prints for a run are longer, as they also count the process's "
        "start-up and the data loading (its first decode, for the first runs on new data).", "",
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
    text += ["", "## Where these ran", "", *where_they_ran(groups, when)]
    return "\n".join(text).rstrip() + "\n"


def where_they_ran(groups: list[ConfigRuns], when: Activity | None = None) -> list[str]:
    """The machines, precisions, code and data behind the runs, with the run time each machine
    gave and, with ``when``, how long the whole sweep took: what a reader needs to weigh the
    numbers and to know what rerunning them costs."""
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
        timed = _timed(members)
        seconds = sum(run.wall_time_s for run in timed) if timed else None
        epochs = sum(run.epochs for run in timed)
        per_epoch = duration(seconds / epochs if seconds is not None and epochs else None)
        lines.append("| " + " | ".join(_number(v) if v != "" else "–" for v in key)
                     + f" | {len(members)} | {duration(seconds)} | {per_epoch} |")
    timed = _timed(runs)
    total = sum(run.wall_time_s for run in timed)
    over = f"all {len(runs)} runs" if len(timed) == len(runs) else (
        f"the {len(timed)} of {len(runs)} runs whose record kept it (not {_names_without_time(runs)})")
    commits = sorted({str(run.environment.get("git_commit", ""))[:7] for run in runs} - {""})
    data = sorted({_data_description(run.data) for run in runs if run.data})
    run_time = (
        "Run time is the run's own wall time, its resumes included." if len(runs) == 1 else
        f"Run time is each run's own wall time, its resumes included, {duration(total)} over {over}; runs that "
        "shared a machine overlap, so the sweep took less time than that."
    )
    return [
        *lines, "",
        f"{run_time} Per epoch is that run time over the epochs trained, validation and the test included "
        "(process start-up and data loading are not): what one epoch cost on that machine, as the sweep shared "
        "it out.",
        *([_sweep_span(when)] if when else []),
        *([f"Code: commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}."] if commits else []),
        *([f"Data: {'; '.join(data)}."] if data else []),
    ]


def _sweep_span(when: Activity) -> str:
    def moment(unix_time: float) -> str:
        return datetime.fromtimestamp(unix_time, timezone.utc).strftime("%Y-%m-%d %H:%M")

    return (f"The whole sweep, by the runs' TensorBoard events: from {moment(when.first)} to {moment(when.last)} "
            f"UTC, {duration(when.last - when.first)}, with some run training during {duration(when.training_s)} "
            "of it (a paused run counts as training; between restarts none was).")


def _data_description(data: dict) -> str:
    counts = ", ".join(f"{data[f'{split}_images']:,} {split}" for split in ("train", "val", "test")
                       if data.get(f"{split}_images"))
    source = Path(str(data.get("source") or "torchvision's CIFAR-10")).name
    stopping = "early stopping on the test set" if data.get("validates_on_test") else "held-out validation"
    return f"`{source}` ({counts} images; {stopping})"


def _number(value: object, spec: str = "g") -> str:
    if value is None:
        return "–"
    return format(value, spec) if isinstance(value, float) else str(value)


def percent(mean: float | None, std: float | None) -> str:
    """A mean over seeds and its standard deviation, in percent: as the table and the terminal's summary show it."""
    if mean is None:
        return "–"
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _timed(runs: list[RunRecord]) -> list[RunRecord]:
    """The runs whose record kept their wall time: run time and time per epoch are theirs alone."""
    return [run for run in runs if run.wall_time_s is not None]


def _names_without_time(runs: list[RunRecord]) -> str:
    return ", ".join(f"{run.config} seed {run.hparams.get('seed')}" for run in runs if run.wall_time_s is None)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
