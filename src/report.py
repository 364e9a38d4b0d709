"""``python -m src.report SWEEP_DIR``: one table and a few figures that answer "which setting is
better, and is the difference more than seed noise?"

Reads every ``SWEEP_DIR/<config>/<run>/results.json`` (a sweep's or a study's runs) and the
sweep's ``sweep.json`` for runs that failed without results, and writes ``report.md``,
``report.csv``, ``curves.png`` and ``test_acc.png`` beside them. For a grid submitted to SLURM it
also says where each run stands: queued, running, finished, failed (:func:`submitted_line`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from src.commands import command_parser
from src.comparison import COLUMNS, SIGNIFICANCE, Comparison, ConfigRuns, collect, compare, runs_cell, summarize
from src.errors import CannotWrite, UserInputError, exit_on_user_error
from src.figures import write_figures
from src.files import write_atomic
from src.results import RunRecord
from src.slurm import submitted_states
from src.sweep_record import read_sweep_record


@dataclass(frozen=True)
class Activity:
    """When a sweep's runs trained, by their TensorBoard events: what a resumed or paused sweep took
    from start to end, which no run's own wall time says."""

    first: float  # Unix time of the first event of any run
    last: float  # of the last event of any run
    training_s: float  # seconds in which some run was writing events


def activity(sweep_dir: Path) -> Activity | None:
    """The :class:`Activity` of the runs under ``sweep_dir``; None without event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    spans = []
    for path in sweep_dir.glob("*/*/events.out.tfevents.*"):  # one file per start or resume of a run
        times = [event.wall_time for event in EventFileLoader(str(path)).Load()]
        if times:
            spans.append((min(times), max(times)))
    if not spans:
        return None
    spans.sort()
    training, (start, end) = 0.0, spans[0]
    for begin, finish in spans[1:]:
        if begin > end:
            training, start = training + end - start, begin
        end = max(end, finish)
    return Activity(spans[0][0], max(finish for _, finish in spans), training + end - start)


def markdown(rows: list[dict], comparisons: list[Comparison], groups: list[ConfigRuns],
             when: Activity | None = None) -> str:
    header = ("config", "optimizer", "lr", "decay", "momentum", "nesterov", "loss", "runs", "test acc %",
              "best val acc %", "epochs", "wall time", "images/s", "notebook")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = (
            f"`{row['config']}`", row["optimizer"], _number(row["lr"]), _number(row["decay"]),
            _number(row["momentum"]), _number(row["nesterov"]), _number(row["loss"]), runs_cell(row),
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
        seconds = sum(run.wall_time_s or 0.0 for run in members)
        epochs = sum(run.epochs for run in members)
        per_epoch = _duration(seconds / epochs if epochs else None)
        lines.append("| " + " | ".join(_number(v) if v != "" else "–" for v in key)
                     + f" | {len(members)} | {_duration(seconds)} | {per_epoch} |")
    total = sum(run.wall_time_s or 0.0 for run in runs)
    commits = sorted({str(run.environment.get("git_commit", ""))[:7] for run in runs} - {""})
    data = sorted({_data_description(run.data) for run in runs if run.data})
    run_time = (
        "Run time is the run's own wall time, its resumes included." if len(runs) == 1 else
        f"Run time is each run's own wall time, its resumes included, {_duration(total)} over all {len(runs)} "
        "runs; runs that shared a machine overlap, so the sweep took less time than that."
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
            f"UTC, {_duration(when.last - when.first)}, with some run training during {_duration(when.training_s)} "
            "of it (a paused run counts as training; between restarts none was).")


def _data_description(data: dict) -> str:
    counts = ", ".join(f"{data[f'{split}_images']:,} {split}" for split in ("train", "val", "test")
                       if data.get(f"{split}_images"))
    source = Path(str(data.get("source") or "torchvision's CIFAR-10")).name
    stopping = "early stopping on the test set" if data.get("validates_on_test") else "held-out validation"
    return f"`{source}` ({counts} images; {stopping})"


def read_runs(sweep_dir: str | Path) -> list[ConfigRuns]:
    """The runs under ``sweep_dir``, by config."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserInputError(f"{sweep_dir} is not a directory; give the directory a sweep or a study wrote.")
    return collect(sweep_dir)


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 groups: list[ConfigRuns] | None = None) -> dict[str, Path]:
    """Write the report files for ``sweep_dir`` (into it, by default); return their paths. ``groups``:
    its runs, where the caller has read them already."""
    sweep_dir = Path(sweep_dir)
    groups = read_runs(sweep_dir) if groups is None else groups
    out = Path(out_dir) if out_dir else sweep_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CannotWrite(err.filename or out, err, "or write the report elsewhere with --out") from err
    rows = summarize(groups)
    paths = {name: out / name for name in ("report.md", "report.csv")}
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    try:  # each file whole or not at all: a full disk leaves the earlier report's files as they were
        write_atomic(paths["report.md"], markdown(rows, compare(groups), groups, activity(sweep_dir)))
        write_atomic(paths["report.csv"], table.getvalue())
        return {**paths, **write_figures(rows, groups, out)}
    except CannotWrite as err:
        raise CannotWrite(err.path, err.error, "or write the report elsewhere with --out") from err


def summary(groups: list[ConfigRuns]) -> str:
    """The report in one line, for the terminal: the runs, the best config, and how many pairs of
    configs differ by more than seed noise."""
    rows, comparisons = summarize(groups), compare(groups)
    totals = {key: sum(row[key] for row in rows) for key in ("runs", "diverged", "pruned", "unfinished")}
    text = f"{_plural(len(rows), 'config')}, runs: {runs_cell(totals)}"
    best = rows[0]
    if best["test_acc_mean"] is not None:
        text += f"; best `{best['config']}`, test acc. {_percent(best['test_acc_mean'], best['test_acc_std'])}%"
    if comparisons:
        beyond = sum(c.beyond_noise for c in comparisons)
        text += f"; {beyond} of {_plural(len(comparisons), 'pair')} of configs differ by more than seed noise"
    return text


def submitted_line(sweep_dir: str | Path) -> str | None:
    """Where the runs of a grid submitted to SLURM stand, by ``sweep.json``'s array tasks, one
    ``squeue`` and each run's ``results.json`` (no accounting database needed): each state counted,
    the runs not finished named. None for a grid that ran on this machine."""
    try:
        outcomes = read_sweep_record(Path(sweep_dir))["runs"]
    except ValueError:
        return None  # collect() has said so
    states = submitted_states(outcomes, Path(sweep_dir))
    if not states:
        return None
    order = ("finished", "diverged", "running", "queued", "interrupted", "failed", "unknown")
    by_state: dict[str, list[str]] = {}
    for key, (task, state) in sorted(states.items(), key=lambda item: item[1][0]):
        by_state.setdefault(state, []).append(f"{key.replace('/seed_', ' seed ')} ({task})")
    parts = []
    for state in sorted(by_state, key=lambda s: order.index(s) if s in order else len(order)):
        runs = by_state[state]
        named = "" if state in ("finished", "diverged") else ": " + ", ".join(runs[:4]) + " …" * (len(runs) > 4)
        parts.append(f"{len(runs)} {state}{named}")
    return "SLURM tasks: " + "; ".join(parts) + ("" if "unknown" not in by_state else " (squeue did not answer)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


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


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("report", "Report on a sweep's or a study's runs.")
    parser.add_argument("sweep_dir", help="the directory python -m src.sweep or src.search wrote")
    parser.add_argument("--out", help="where to write the report (default: the sweep directory)")
    parser.add_argument("--print", action="store_true", help="print report.md too, to read it or pipe it on")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        submitted = submitted_line(args.sweep_dir) if Path(args.sweep_dir).is_dir() else None
        try:
            groups = read_runs(args.sweep_dir)
        except UserInputError:
            if not submitted:
                raise
            print(f"{submitted}\nNo run has results yet: nothing to report so far.")
            return
        paths = write_report(args.sweep_dir, args.out, groups)
    if args.print:
        print(paths["report.md"].read_text())
    print(summary(groups))
    if submitted:
        print(submitted)
    print("written:", ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
