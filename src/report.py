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
from pathlib import Path

from src.commands import command_parser
from src.comparison import COLUMNS, ConfigRuns, collect, compare, runs_cell, summarize
from src.errors import CannotWrite, UserInputError, exit_on_user_error
from src.figures import write_figures
from src.files import write_atomic
from src.report_markdown import Activity, markdown, percent
from src.slurm import submitted_states
from src.sweep_record import read_sweep_record


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
        text += f"; best `{best['config']}`, test acc. {percent(best['test_acc_mean'], best['test_acc_std'])}%"
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
